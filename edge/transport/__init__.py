"""The transport stage: ZeroMQ publisher and subscriber, CURVE keys, on-demand subscriptions."""

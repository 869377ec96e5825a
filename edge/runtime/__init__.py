"""The on-device runtime: camera → keypoints → ring buffer → window → model → ZeroMQ message.

Sources and capture, the Holistic extractor, the ring buffer, resampling, ONNX inference, sign
decisions, the publisher, sd_notify and the daemon that wires them together.
"""

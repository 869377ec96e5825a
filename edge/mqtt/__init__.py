"""``slr-mqtt``: the daemon's ZeroMQ messages on an MQTT broker, with Home Assistant discovery.

``config`` reads the ``[mqtt]`` table, ``topics`` names every topic and builds the discovery
configs, ``outbox`` is the bounded queue of events kept while the broker is away, ``link`` owns the
paho-mqtt client and its connection, ``bridge`` validates and routes each daemon message.
"""

"""Which topics each subscriber gets, decided by the daemon: the XPUB side of on-demand topics.

The daemon's socket is an ``XPUB`` in manual mode (``XPUB_MANUAL``): every subscribe or
unsubscribe a client sends arrives here as a message (``b"\\x01" + prefix`` or ``b"\\x00" +
prefix``, also ``\\x00`` ones on behalf of a client that disconnected), and the daemon tells
ZeroMQ what that client really receives. That gives two things a plain PUB socket cannot:

* the daemon *knows* how many clients want an on-demand topic (``preview``), so it produces
  those messages only while someone watches;
* a client that subscribes to everything (``b""``) or to a prefix keeps receiving exactly the
  broadcast topics it received before (``prediction``, ``sign``, ``status``), never the large
  on-demand ones, which only a subscription to their full name selects.
"""

from __future__ import annotations

from collections import Counter

from edge.contract.protocol import ON_DEMAND_TOPICS, TOPICS

SUBSCRIBE = 1
UNSUBSCRIBE = 0


class SubscriptionRouter:
    """Translates raw XPUB subscription messages into per-client topic subscriptions.

    Pure logic (no socket), so the rule is tested on its own; :class:`edge.transport.publisher.Publisher`
    applies the returned ``(subscribe?, topic)`` pairs to the client the message came from.
    """

    def __init__(self) -> None:
        self._watchers: Counter[str] = Counter()

    def handle(self, message: bytes) -> list[tuple[bool, bytes]]:
        """``[(True, b"sign"), ...]``: what to (un)subscribe for the client that sent ``message``."""
        if not message or message[0] not in (SUBSCRIBE, UNSUBSCRIBE):
            return []  # not a subscription message: XPUB clients may send data too; ignore it
        subscribe = message[0] == SUBSCRIBE
        prefix = bytes(message[1:])
        try:
            text = prefix.decode("ascii")
        except UnicodeDecodeError:
            return []
        if text in ON_DEMAND_TOPICS:
            self._watchers[text] += 1 if subscribe else -1
            if self._watchers[text] <= 0:
                del self._watchers[text]
            return [(subscribe, prefix)]
        # A prefix (b"" = everything): the broadcast topics it matches, by their full names.
        return [(subscribe, topic.encode("ascii")) for topic in TOPICS if topic.startswith(text)]

    def watchers(self, topic: str) -> int:
        """How many clients subscribe to the on-demand ``topic`` by name right now."""
        return self._watchers[topic]

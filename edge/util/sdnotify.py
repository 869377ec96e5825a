"""The systemd notify protocol (sd_notify(3)), implemented directly to avoid a dependency.

With ``Type=notify`` systemd waits for ``READY=1`` before it considers the service started, and
with ``WatchdogSec=`` it restarts the service unless ``WATCHDOG=1`` arrives in time. A notification
is one datagram of ``KEY=value`` lines sent to the AF_UNIX socket named by ``$NOTIFY_SOCKET``
(a leading ``@`` means Linux's abstract namespace).

Outside systemd (no ``$NOTIFY_SOCKET``) every call is a no-op, and no call ever raises: failing to
tell systemd something must not take the daemon down. Failures are logged at debug level.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)

_ENV_KEYS = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


class SystemdNotifier:
    """Sends sd_notify messages; safe to use from several threads and outside systemd.

    Typical use in the daemon::

        notifier = SystemdNotifier()
        interval = notifier.watchdog_interval()  # ping every interval / 2 if not None
        notifier.ready()
        notifier.status("running: 30 fps")
        notifier.watchdog()  # from the loop that proves the pipeline is alive
        notifier.stopping()

    Args:
        environ: where to read ``NOTIFY_SOCKET``/``WATCHDOG_USEC``/``WATCHDOG_PID``; defaults to
            ``os.environ`` at construction time.
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self._env = {key: env[key] for key in _ENV_KEYS if key in env}
        self._address = self._parse_address(self._env.get("NOTIFY_SOCKET", ""))

    @staticmethod
    def _parse_address(value: str) -> str | bytes | None:
        if not value:
            return None
        if value.startswith("@"):
            return b"\0" + value[1:].encode()
        if value.startswith("/"):
            return value
        log.debug("unsupported NOTIFY_SOCKET %r; notifications disabled", value)
        return None

    @property
    def enabled(self) -> bool:
        """True when running under systemd with a usable ``$NOTIFY_SOCKET``."""
        return self._address is not None

    def notify(self, *assignments: str) -> bool:
        """Send ``KEY=value`` lines in one datagram; True if sent, False if disabled or failed."""
        if self._address is None:
            return False
        data = "\n".join(assignments).encode("utf-8", "replace")
        try:
            # Non-blocking: if the receiver stops reading, its small datagram queue fills and a
            # blocking send would freeze the daemon's main loop; dropping a ping is harmless.
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.setblocking(False)
                sock.sendto(data, self._address)
        except OSError as exc:
            log.debug("sd_notify %r failed: %s", data[:80], exc)
            return False
        return True

    def ready(self) -> bool:
        """Startup finished: systemd marks the unit active and starts watchdog supervision."""
        return self.notify("READY=1")

    def status(self, text: str) -> bool:
        """One-line human status shown by ``systemctl status`` (newlines become spaces)."""
        return self.notify("STATUS=" + " ".join(text.splitlines()))

    def watchdog(self) -> bool:
        """Keep-alive; call at least every :meth:`watchdog_interval` / 2 seconds."""
        return self.notify("WATCHDOG=1")

    def stopping(self) -> bool:
        """Shutdown began, so systemd does not mistake a slow exit for a hang."""
        return self.notify("STOPPING=1")

    def watchdog_interval(self) -> float | None:
        """Seconds systemd waits for ``WATCHDOG=1`` before restarting us, or None if no watchdog.

        None also when ``WATCHDOG_PID`` names another process (the variable was inherited).
        """
        usec = self._env.get("WATCHDOG_USEC")
        pid = self._env.get("WATCHDOG_PID")
        try:
            if pid is not None and int(pid) != os.getpid():
                return None
            interval = int(usec) / 1_000_000 if usec is not None else 0.0
        except ValueError:
            log.debug("ignoring malformed WATCHDOG_USEC=%r WATCHDOG_PID=%r", usec, pid)
            return None
        return interval if interval > 0 else None

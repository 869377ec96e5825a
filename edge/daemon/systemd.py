"""What systemd (``Type=notify``, ``WatchdogSec=``) hears from the daemon, and when.

* ``READY=1`` once: after the first frame is processed, or as soon as the pipeline is up and
  waiting for a camera that is not there yet (the first open failed: restarting cannot make a
  camera appear, and the unit must not fail its start timeout over it);
* ``WATCHDOG=1`` from the main loop, every half watchdog interval, only while it makes progress
  (frames extracted or idle samples gated) or the capture is legitimately waiting (connecting,
  lost, end of file), so a hung extraction or a camera that silently stops delivering gets
  restarted;
* ``STATUS=`` mirrors each ``status`` message; ``STOPPING=1`` on shutdown.

Outside systemd every call is a no-op (:class:`edge.util.sdnotify.SystemdNotifier`).
"""

from __future__ import annotations

import logging
import time

from edge.contract.protocol import Status
from edge.util.sdnotify import SystemdNotifier

log = logging.getLogger(__name__)


class SystemdLink:
    """The daemon's side of the notify protocol: readiness once, a paced watchdog, status lines."""

    def __init__(self, notifier: SystemdNotifier) -> None:
        self.notifier = notifier
        self.ready_sent = False
        self._watchdog = notifier.watchdog_interval()
        self._last_ping = 0.0
        self._pinged_progress = 0

    def ready(self, endpoint: str) -> None:
        """Tell systemd the daemon started (the first call only)."""
        if self.ready_sent:
            return
        self.ready_sent = True
        self.notifier.ready()
        log.info("ready: publishing on %s", endpoint)

    def alive(self, progress: int, waiting: bool) -> None:
        """Ping the watchdog if it is due and ``progress`` grew since the last ping (or ``waiting``)."""
        if self._watchdog is None or time.monotonic() - self._last_ping < self._watchdog / 2:
            return
        if progress > self._pinged_progress or waiting:
            self.notifier.watchdog()
            self._last_ping, self._pinged_progress = time.monotonic(), progress

    def status(self, status: Status) -> None:
        """Mirror a ``status`` message as systemd's one-line ``STATUS=``."""
        p50 = status.inference_p50_ms
        self.notifier.status(
            f"{status.state}, camera {status.camera}, {status.extraction_fps:.1f} frames/s extracted"
            f"{' (idle duty cycle)' if status.extraction_mode == 'idle' else ''}, "
            f"{status.dropped_frames} dropped, inference p50 "
            f"{'-' if p50 is None else f'{p50:.0f} ms'}"
        )

    def stopping(self) -> None:
        self.notifier.stopping()

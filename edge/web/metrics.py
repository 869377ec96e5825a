"""``GET /metrics``: the daemon's health and throughput in Prometheus text format.

Counters and histograms are fed by the messages ``slr-web`` receives (every ``prediction`` is one
inferred window); the daemon's own running totals (dropped frames, errors by stage) and rates
come from its latest ``status`` through a collector, so they read exactly what the daemon says.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from edge.contract.protocol import DROP_REASONS

if TYPE_CHECKING:
    from edge.web.warm_worker import WarmWorker

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
#: A status older than this means the daemon is gone (it publishes one every second): /healthz,
#: /metrics and the page (through /api/config) all use this one figure.
STATUS_STALE_S = 5.0


def status_fresh(status: dict[str, Any] | None, age: float | None) -> bool:
    """True while the newest status is recent and the daemon is not shutting down."""
    return (
        status is not None and age is not None and age <= STATUS_STALE_S and status.get("state") != "stopping"
    )


class _StatusCollector(Collector):
    """Gauges and counters read from the newest ``status`` message at scrape time."""

    def __init__(self, latest: Callable[[], tuple[dict[str, Any] | None, float | None]]) -> None:
        self._latest = latest

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        status, age = self._latest()
        fresh = status_fresh(status, age)
        yield GaugeMetricFamily(
            "slovo_daemon_up", "1 while the daemon's status arrives and it is not stopping", value=fresh
        )
        if status is None:
            return
        if age is not None:
            yield GaugeMetricFamily("slovo_status_age_seconds", "Age of the newest daemon status", value=age)
        if fresh:  # a stale gauge would claim the last frame rate still holds: drop them
            yield from _status_gauges(status)
        yield from _status_counters(status)


def _status_gauges(status: dict[str, Any]) -> Iterator[GaugeMetricFamily]:
    """Rates and levels from a fresh status; the daemon's own latency percentiles (seconds)."""
    gauges = (
        ("slovo_capture_fps", "Frames/s read from the camera", "capture_fps", 1.0),
        ("slovo_extraction_fps", "Frames/s turned into keypoints", "extraction_fps", 1.0),
        ("slovo_buffer_fill", "Frames in the 128-frame buffer", "buffer_fill", 1.0),
        ("slovo_idle", "1 while no hands are seen and inference pauses", "idle", 1.0),
        ("slovo_daemon_uptime_seconds", "Daemon uptime", "uptime_s", 1.0),
        ("slovo_latency_p50_seconds", "Daemon's median capture-to-publish latency", "latency_p50_ms", 1e-3),
        ("slovo_latency_p95_seconds", "Daemon's p95 capture-to-publish latency", "latency_p95_ms", 1e-3),
        ("slovo_inference_p50_seconds", "Daemon's median model time per window", "inference_p50_ms", 1e-3),
    )
    for name, help_text, key, scale in gauges:
        value = _number(status.get(key))
        if value is not None:
            yield GaugeMetricFamily(name, help_text, value=value * scale)


def _status_counters(status: dict[str, Any]) -> Iterator[CounterMetricFamily]:
    """The daemon's running totals: still true when its status is old (they only grow)."""
    dropped = _number(status.get("dropped_frames"))
    if dropped is not None:
        help_text = "Frames skipped because extraction fell behind"
        yield CounterMetricFamily("slovo_dropped_frames", help_text, dropped)
    errors = CounterMetricFamily("slovo_daemon_errors", "Errors the daemon survived", labels=["stage"])
    stages = status.get("errors")
    for stage, count in stages.items() if isinstance(stages, dict) else ():
        if (value := _number(count)) is not None:
            errors.add_metric([str(stage)], value)
    yield errors


def _number(value: Any) -> float | None:
    """``value`` as a float if it is a JSON number (or boolean) a finite float can hold, else None."""
    if not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer of 400 digits
        return None
    return number if math.isfinite(number) else None


class WebMetrics:
    """The registry behind ``/metrics`` (its own, so tests can build several apps in one process)."""

    def __init__(self, latest_status: Callable[[], tuple[dict[str, Any] | None, float | None]]) -> None:
        self.registry = CollectorRegistry()
        self.inference = Histogram(
            "slovo_inference_latency_seconds",
            "Model inference time per window, as the daemon reports it",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.publish = Histogram(
            "slovo_publish_latency_seconds",
            "Time from the daemon publishing a message to slr-web receiving it",
            ["topic"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.windows = Counter(
            "slovo_windows", "Windows inferred (prediction messages)", registry=self.registry
        )
        self.signs = Counter("slovo_signs", "Signs recognised (sign messages)", registry=self.registry)
        self.lost = Counter(
            "slovo_messages_lost", "Messages lost on the way (gaps in seq)", ["topic"], registry=self.registry
        )
        self.dropped = Counter(
            "slovo_messages_dropped",
            "Messages from the daemon's endpoint dropped as invalid (edge.contract.wire), by reason",
            ["reason"],
            registry=self.registry,
        )
        for reason in DROP_REASONS:  # every reason shows from the start, at 0
            self.dropped.labels(reason)
        self.shed = Counter(
            "slovo_web_messages_shed",
            "Messages from the daemon's endpoint dropped unread: more per second than slr-web handles",
            registry=self.registry,
        )
        self.errors = Counter("slovo_web_errors", "slr-web errors by kind", ["kind"], registry=self.registry)
        self.uploads = Counter(
            "slovo_web_uploads", "Clip uploads by outcome", ["outcome"], registry=self.registry
        )
        self.sse_clients = Gauge("slovo_web_sse_clients", "Open /api/events streams", registry=self.registry)
        self._add_dashboard_metrics()
        self.registry.register(_StatusCollector(latest_status))

    def _add_dashboard_metrics(self) -> None:
        """Latency as the daemon measures it, segments, and the transcript."""
        self.latency = Histogram(
            "slovo_latency_seconds",
            "Capture-to-publish latency as the daemon measures it (latency_ms), by topic",
            ["topic"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.segments = Counter(
            "slovo_segments", "Signing episodes classified (segment messages)", registry=self.registry
        )
        self.transcript_entries = Gauge(
            "slovo_web_transcript_entries", "Entries in the shared transcript", registry=self.registry
        )

    def watch_worker(self, worker: WarmWorker) -> None:
        """Gauges of the warm upload worker, read at scrape time: is one kept, and its memory."""
        up = Gauge("slovo_web_worker_up", "1 while the upload worker is running", registry=self.registry)
        up.set_function(lambda: worker.pid is not None)
        rss = Gauge(
            "slovo_web_worker_rss_bytes",
            "Resident memory of the upload worker (MediaPipe and the model; 0 when none runs)",
            registry=self.registry,
        )
        rss.set_function(worker.rss_bytes)
        starts = Gauge(
            "slovo_web_worker_starts", "Upload worker processes started so far", registry=self.registry
        )
        starts.set_function(lambda: worker.starts)

    def _observe_dashboard(self, topic: str, payload: dict[str, Any]) -> None:
        latency = _number(payload.get("latency_ms"))
        if latency is not None and topic in ("prediction", "sign", "segment"):
            self.latency.labels(topic).observe(max(0.0, latency) / 1000.0)
        if topic == "segment":
            self.segments.inc()

    def observe_message(self, topic: str, payload: dict[str, Any]) -> None:
        self._observe_dashboard(topic, payload)
        ts = payload.get("ts")
        if isinstance(ts, (int, float)):
            self.publish.labels(topic).observe(max(0.0, time.time() - ts))
        if topic == "prediction":
            self.windows.inc()
            if (ms := _number(payload.get("inference_ms"))) is not None and ms >= 0:
                self.inference.observe(ms / 1000.0)
        elif topic == "sign":
            self.signs.inc()

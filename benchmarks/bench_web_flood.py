"""slr-web's bridge under a message flood (issue 28): how long the event loop is held, the reader's
CPU, and what is shed, dropped as invalid or lost at ZeroMQ's high-water mark.

A publisher in its own process sends as fast as it can for ``--seconds`` (valid status, valid
segment, broken JSON, 300 KB messages) while a 10 ms ticker runs on the bridge's event loop. The
figures are in docs/RELIABILITY.md ("Hostile dashboard state and load").

    python benchmarks/bench_web_flood.py [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

for path in (Path(__file__).resolve().parents[1], Path(__file__).resolve().parents[1] / "tests"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from helpers_web import free_port  # noqa: E402
from test_web_hostile_fixes import Flood  # noqa: E402

from edge.web.bridge import DaemonBridge  # noqa: E402
from edge.web.metrics import WebMetrics  # noqa: E402

KINDS = ("status", "segment", "garbage", "oversized")


def _total(metrics: WebMetrics, name: str) -> float:
    family = getattr(metrics, name)
    return sum(s.value for mf in family.collect() for s in mf.samples if s.name.endswith("_total"))


def one(kind: str, seconds: float) -> str:
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    flood = Flood(Path(tempfile.mkdtemp()), endpoint, kind, seconds)
    metrics = WebMetrics(lambda: (None, None))
    bridge = DaemonBridge(endpoint, metrics)

    async def scenario() -> tuple[float, float]:
        await bridge.start()
        worst, last, cpu = 0.0, time.monotonic(), time.process_time()
        try:
            while flood.proc.poll() is None:
                await asyncio.sleep(0.01)
                now = time.monotonic()
                worst, last = max(worst, now - last), now
        finally:
            await bridge.stop()
        return worst, time.process_time() - cpu

    try:
        worst, cpu = asyncio.run(scenario())
        sent = flood.sent()
    finally:
        flood.stop()
    return (
        f"| {kind} | {sent} | {worst * 1000:.0f} | {cpu / seconds:.2f} | {_total(metrics, 'shed'):.0f} "
        f"| {_total(metrics, 'dropped'):.0f} | {_total(metrics, 'lost'):.0f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    print("| flood | sent | longest loop hold (ms) | reader CPU (cores) | shed | invalid | lost (seq) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for kind in KINDS:
        print(one(kind, args.seconds), flush=True)


if __name__ == "__main__":
    main()

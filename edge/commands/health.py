"""``slr-health``: exit 0 only while the daemon makes progress (the container's HEALTHCHECK).

A status message alone proves little: the status thread keeps publishing while the capture hangs
in a read that never returns, with ``camera`` still ``ok``. So one status message is read and the
daemon counts as healthy only if its camera is ``ok`` and a frame was extracted within the last
``--max-frame-age`` seconds (``last_frame_age_s``). Silence (a frozen or dead daemon) fails too.

Exit status: 0 healthy, 1 unhealthy (one line says why), 2 bad options or key files.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from edge.commands.scaffold import add_version, run
from edge.contract.protocol import TOPIC_STATUS, ProtocolError

PROG = "slr-health"

#: Default for --max-frame-age: a Raspberry Pi extracts ~10 frames/s, so 20 s without one is a hang.
MAX_FRAME_AGE_S = 20.0
#: Where the daemon's settings say it publishes (the container sets it); else the default endpoint.
ENDPOINT_VARIABLE = "SLR_EDGE_ENDPOINT"


def connect_endpoint(bind_endpoint: str) -> str:
    """The address to connect to for a bind endpoint: a wildcard host becomes loopback."""
    for wildcard in ("tcp://0.0.0.0:", "tcp://*:", "tcp://[::]:"):
        if bind_endpoint.startswith(wildcard):
            return "tcp://127.0.0.1:" + bind_endpoint[len(wildcard) :]
    return bind_endpoint


def verdict(status: Mapping[str, Any], max_frame_age_s: float) -> str | None:
    """None if ``status`` shows progress, else the reason it does not."""
    camera = status.get("camera")
    if camera != "ok":
        return f"camera {camera}"
    if status.get("state") == "stopping":
        return "daemon stopping"
    age = status.get("last_frame_age_s")
    if age is None:
        return (
            "no frame extracted yet" if "last_frame_age_s" in status else "daemon too old to report progress"
        )
    if age > max_frame_age_s:
        return f"no frame extracted for {age:.0f} s (limit {max_frame_age_s:g} s)"
    return None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Exit 0 if slr-edge is making progress: camera ok and frames being extracted.",
        epilog="example:\n  slr-health --max-frame-age 30   # HEALTHCHECK CMD\n\n"
        "exit codes: 0 healthy, 1 unhealthy or silent, 2 bad options or key files",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_version(parser)
    parser.add_argument(
        "--endpoint",
        help=f"publisher endpoint (default: ${ENDPOINT_VARIABLE} with a wildcard host read as "
        "127.0.0.1, else tcp://127.0.0.1:5556)",
    )
    parser.add_argument(
        "--max-frame-age",
        type=float,
        default=MAX_FRAME_AGE_S,
        metavar="S",
        help="unhealthy if no frame was extracted for S seconds (default %(default)g)",
    )
    parser.add_argument(
        "--timeout", type=float, default=5.0, metavar="S", help="unhealthy if no status within S seconds"
    )
    parser.add_argument("--curve-server-key", metavar="FILE", help="publisher's public CURVE key file")
    parser.add_argument("--curve-client-key", metavar="FILE", help="this client's secret CURVE key file")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``slr-health``; returns the exit status (0 healthy, 1 unhealthy, 2 bad options)."""
    return run(PROG, _main, argv)


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    import zmq

    from edge.runtime.publisher import DEFAULT_ENDPOINT, KeyFileError, Subscriber

    endpoint = args.endpoint or connect_endpoint(os.environ.get(ENDPOINT_VARIABLE, DEFAULT_ENDPOINT))
    try:
        subscriber = Subscriber(
            endpoint,
            (TOPIC_STATUS,),
            curve_server_key=args.curve_server_key,
            curve_client_key=args.curve_client_key,
        )
    except (KeyFileError, ValueError, zmq.ZMQError) as exc:
        print(f"slr-health: error: {exc}", file=sys.stderr)
        return 2
    try:
        message = subscriber.recv(args.timeout)
    except ProtocolError as exc:
        print(f"slr-health: unhealthy: malformed status message: {exc}")
        return 1
    finally:
        subscriber.close()
    if message is None:
        print(f"slr-health: unhealthy: no status from {endpoint} within {args.timeout:g} s")
        return 1
    reason = verdict(message[1], args.max_frame_age)
    if reason is not None:
        print(f"slr-health: unhealthy: {reason}")
        return 1
    print(f"slr-health: healthy: last frame {message[1]['last_frame_age_s']:.1f} s ago")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``slr-health``: exit 0 only while the daemon makes progress (the container's HEALTHCHECK).

A status message alone proves little: the status thread keeps publishing while the capture hangs
in a read that never returns, with ``camera`` still ``ok``. So one status message is read and the
daemon counts as healthy only if its camera is ``ok`` and a frame was extracted within the last
``--max-frame-age`` seconds (``last_frame_age_s``). Silence (a frozen or dead daemon) fails too.

Messages are validated like every subscriber's (:func:`edge.contract.wire.check_payload`): an
invalid one is dropped and the check keeps waiting for a valid status until ``--timeout``; a
status whose ``last_frame_age_s`` is not a finite number of seconds is unhealthy, never healthy.

Exit status: 0 healthy, 1 unhealthy (one line says why), 2 bad options or key files.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from edge.commands.scaffold import add_version, run
from edge.contract.protocol import TOPIC_STATUS, ProtocolError
from edge.contract.wire import Dropped, check_payload

PROG = "slr-health"

#: Default for --max-frame-age: a Raspberry Pi extracts ~10 frames/s, so 20 s without one is a hang.
MAX_FRAME_AGE_S = 20.0
#: Where the daemon's settings say it publishes (the container sets it); else the default endpoint.
ENDPOINT_VARIABLE = "SLR_EDGE_ENDPOINT"
#: Upper bound of --timeout and --max-frame-age (a day: anything longer is a typo).
MAX_SECONDS = 86_400.0


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
    # NaN compares false with everything: without this, a NaN age would pass "age > limit".
    if not isinstance(age, (int, float)) or isinstance(age, bool) or not 0 <= age < math.inf:
        return f"status reports an invalid last_frame_age_s ({age!r:.40})"
    if not 0 < max_frame_age_s < math.inf:
        return f"invalid frame age limit {max_frame_age_s!r}"
    if age > max_frame_age_s:
        return f"no frame extracted for {age:.0f} s (limit {max_frame_age_s:g} s)"
    return None


def seconds(text: str) -> float:
    """argparse type: finite seconds above 0 (``nan``, ``inf``, 0 and negatives are usage errors: exit 2)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < value < MAX_SECONDS:
        raise argparse.ArgumentTypeError(
            f"must be more than 0 and less than {MAX_SECONDS:g} seconds: {text!r}"
        )
    return value


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
        type=seconds,
        default=MAX_FRAME_AGE_S,
        metavar="S",
        help="unhealthy if no frame was extracted for S seconds (default %(default)g)",
    )
    parser.add_argument(
        "--timeout",
        type=seconds,
        default=5.0,
        metavar="S",
        help="unhealthy if no valid status within S seconds (default %(default)g)",
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

    from edge.transport.keys import KeyFileError
    from edge.transport.publisher import DEFAULT_ENDPOINT
    from edge.transport.subscriber import Subscriber

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
        status, drops = _first_valid_status(subscriber, args.timeout)
    finally:
        subscriber.close()
    if status is None:
        dropped = ""
        if drops:
            parts = ", ".join(f"{reason} {count}" for reason, count in sorted(drops.items()))
            dropped = f" ({drops.total()} invalid message(s) dropped: {parts})"
        print(f"slr-health: unhealthy: no valid status from {endpoint} within {args.timeout:g} s{dropped}")
        return 1
    reason = verdict(status, args.max_frame_age)
    if reason is not None:
        print(f"slr-health: unhealthy: {reason}")
        return 1
    print(f"slr-health: healthy: last frame {status['last_frame_age_s']:.1f} s ago")
    return 0


def _first_valid_status(subscriber: Any, timeout_s: float) -> tuple[dict[str, Any] | None, Counter[str]]:
    """The first schema-valid status within ``timeout_s``, and the invalid messages dropped meanwhile."""
    drops: Counter[str] = Counter()
    deadline = time.monotonic() + timeout_s
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            message = subscriber.recv(remaining)
        except ProtocolError as exc:
            drops[exc.reason] += 1
            continue
        if message is None:
            break
        checked = check_payload(*message)
        if isinstance(checked, Dropped):
            drops[checked.reason] += 1
            continue
        return checked.payload, drops
    return None, drops


if __name__ == "__main__":
    sys.exit(main())

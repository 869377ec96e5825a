"""``slr-web``: the dashboard the device serves — live recognition, camera view, upload a clip.

One more ZeroMQ subscriber of the daemon (same ``--endpoint`` and CURVE options as
``slr-listen``), plus ``--model`` for classifying uploaded or recorded clips. Serves everything
from the package (no internet needed), on 127.0.0.1 unless ``--allow-remote`` with a token file.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket
import sys
from collections.abc import Sequence

from edge.commands.scaffold import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, add_version, interrupt_on_signals, run

PROG = "slr-web"
#: A PEM certificate chain or key is a few KB; anything bigger (or not a file) is not one.
MAX_PEM_BYTES = 1024 * 1024

EPILOG = """\
examples:
  slr-web --model slovo.onnx                               # http://127.0.0.1:8080/
  slr-web --model slovo.onnx --port 9000 --endpoint ipc:///run/slovo-edge/pub.sock
  slr-web --model slovo.onnx --host 0.0.0.0 --allow-remote --token-file /etc/slovo-edge/web.token
  slr-web --model slovo.onnx --min-confidence 0.7 --state-dir /var/lib/slovo-web

The page is in Russian, or in English when the browser prefers it (or the user switches). The
transcript is shared by every viewer and kept in --state-dir (default $STATE_DIRECTORY from
systemd, else $XDG_STATE_HOME/slovo-web or ~/.local/state/slovo-web).

exit codes: 0 stopped (SIGTERM or Ctrl-C), 1 cannot serve (the port is taken, the server failed)
  or an unexpected error, 2 bad options, endpoint, token file, TLS or key files, or model
token file: one line of printable UTF-8 (any script; spaces inside are kept), at least 16
  characters, readable only by its owner; at most 4 KB, a regular file
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Serve the slovo-edge dashboard: live recognition, camera view with the skeleton, "
        "upload or record a clip.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_version(parser)
    parser.add_argument("--endpoint", default="tcp://127.0.0.1:5556", help="daemon's ZeroMQ endpoint")
    parser.add_argument("--model", metavar="ONNX", help="model for uploaded clips (without it: no uploads)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    parser.add_argument(
        "--allow-remote", action="store_true", help="allow a non-loopback --host (needs --token-file)"
    )
    parser.add_argument("--token-file", metavar="FILE", help="secret every request must present")
    parser.add_argument("--max-upload-mb", type=float, default=50.0, help="upload size limit (default 50)")
    parser.add_argument("--upload-timeout", type=float, default=600.0, help="seconds per clip (default 600)")
    parser.add_argument(
        "--upload-min-rate",
        type=float,
        default=32.0,
        metavar="KB_PER_S",
        help="slowest average upload rate accepted after 10 s (default 32): a stalled upload is cut off",
    )
    parser.add_argument("--tls-cert", metavar="PEM", help="serve HTTPS (browsers record only over HTTPS)")
    parser.add_argument("--tls-key", metavar="PEM", help="private key for --tls-cert")
    parser.add_argument("--curve-server-key", metavar="FILE", help="daemon's public CURVE key (.key)")
    parser.add_argument("--curve-client-key", metavar="FILE", help="this client's secret key (.key_secret)")
    parser.add_argument(
        "--min-confidence",
        type=float,
        default=0.5,
        metavar="P",
        help="headline says 'уверен' (confident) at or above P, and the transcript lists only those "
        "(lower ones are hidden unless the page asks to show them greyed); default 0.5",
    )
    parser.add_argument("--state-dir", metavar="DIR", help="where the shared transcript is kept (see below)")
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    return parser


def settings_from_args(args: argparse.Namespace) -> object:
    """Validate the options into :class:`edge.web.app.WebSettings`; ``ValueError`` with one line."""
    from edge.transport.keys import KeyFileError, load_key
    from edge.web.app import WebSettings
    from edge.web.security import loopback_host, read_token
    from edge.web.uploads import describe_model

    loopback = loopback_host(args.host)
    if not loopback and not args.allow_remote:
        raise ValueError(f"--host {args.host} is not loopback; pass --allow-remote and --token-file")
    if not loopback and args.token_file is None:
        raise ValueError("--allow-remote needs --token-file (a secret every request must present)")
    if (args.tls_cert is None) != (args.tls_key is None):
        raise ValueError("--tls-cert and --tls-key go together")
    if not (
        0 < args.max_upload_mb <= 4096
        and 0 < args.upload_timeout <= 86400
        and 0 < args.upload_min_rate <= 1e6
        and 0 < args.port < 65536
    ):  # comparisons are False for nan, and inf is out of every range
        raise ValueError(
            "--max-upload-mb (up to 4096), --upload-timeout (up to 86400 s), --upload-min-rate and "
            "--port (below 65536) must be positive numbers"
        )
    check_endpoint(args.endpoint)
    if args.tls_cert is not None:
        check_tls(args.tls_cert, args.tls_key)
    if (args.curve_server_key is None) != (args.curve_client_key is None):
        raise ValueError("CURVE needs both --curve-server-key and --curve-client-key")
    keys = None
    if args.curve_server_key is not None:
        try:
            server_public, _ = load_key(args.curve_server_key, secret=False, role="CURVE server public")
            client_public, client_secret = load_key(args.curve_client_key, secret=True, role="CURVE client")
        except KeyFileError as exc:
            raise ValueError(str(exc)) from None
        if client_secret is None:
            raise ValueError(f"{args.curve_client_key}: not a secret key file (.key_secret)")
        keys = (server_public, client_public, client_secret)
    if not 0.0 <= args.min_confidence <= 1.0:  # NaN fails this too
        raise ValueError("--min-confidence must be between 0 and 1")
    from pathlib import Path

    from edge.web.transcript import default_state_dir, prepare_state_dir

    state_dir = prepare_state_dir(Path(args.state_dir) if args.state_dir else default_state_dir())
    token = read_token(args.token_file) if args.token_file else None
    from edge.models.resolve import resolve_model

    args.model = resolve_model(args.model) if args.model else None  # --model NAME: fetched registry model
    info = asyncio.run(describe_model(args.model)) if args.model else None
    return WebSettings(
        endpoint=args.endpoint,
        model=args.model,
        model_info=info,
        token=token,
        loopback_only=loopback,
        secure_cookie=args.tls_cert is not None,
        max_upload_bytes=int(args.max_upload_mb * 1024 * 1024),
        upload_timeout_s=args.upload_timeout,
        upload_min_rate=args.upload_min_rate * 1024,
        curve_keys=keys,
        state_dir=state_dir,
        min_confidence=args.min_confidence,
    )


def check_endpoint(endpoint: str) -> None:
    """``ValueError`` (one line) unless ZeroMQ accepts ``endpoint`` to connect to."""
    import zmq

    sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.SUB)
    try:
        sock.connect(endpoint)
    except zmq.ZMQError as exc:
        raise ValueError(f"--endpoint {endpoint!r}: {exc}") from None
    finally:
        sock.close(linger=0)


def check_tls(cert: str, key: str) -> None:
    """``ValueError`` (one line) unless ``cert``/``key`` are small regular files of a usable pair.

    Loaded here once, without a passphrase prompt, so that a FIFO, a device, a wrong or encrypted
    key fails at start-up with exit 2 instead of hanging or failing inside the server.
    """
    import ssl

    from edge.util.files import read_small_regular_file

    for option, path in (("--tls-cert", cert), ("--tls-key", key)):
        try:
            read_small_regular_file(path, MAX_PEM_BYTES)
        except OSError as exc:
            raise ValueError(f"{option} {path}: {exc.strerror or exc}") from None
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key, password=lambda: b"")
    except (ssl.SSLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or str(exc).splitlines()[0]
        raise ValueError(f"--tls-cert/--tls-key are not a usable certificate and key: {reason}") from None


def listen_socket(host: str, port: int) -> socket.socket:
    """The server's listening socket, bound here so a taken port is one clear line (``OSError``)."""
    host = host.strip("[]")
    found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    # "localhost" may resolve to ::1 first; the page's documented address is 127.0.0.1.
    family, kind, proto, _, address = min(found, key=lambda info: info[0] != socket.AF_INET)
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``slr-web``; returns the exit status."""
    return run(PROG, _main, argv, extra="web")


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(levelname)s %(name)s: %(message)s")
    # SIGTERM (systemd, docker stop) is a normal stop like Ctrl-C: exit 0 as the epilog says.
    # uvicorn takes both signals while it serves and hands them back here when it has stopped.
    with interrupt_on_signals():
        try:
            return _serve(args)
        except KeyboardInterrupt:
            return EXIT_OK


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from edge.web.app import build_app
    from edge.web.security import TokenError

    try:
        settings = settings_from_args(args)
    except (ValueError, TokenError) as exc:
        print(f"slr-web: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        sock = listen_socket(args.host, args.port)
    except socket.gaierror as exc:  # a --host that names nothing is a bad option
        print(f"slr-web: error: --host {args.host}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(
            f"slr-web: error: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    config = uvicorn.Config(
        build_app(settings),  # type: ignore[arg-type]
        host=args.host,
        port=args.port,
        log_level=args.log_level.lower(),
        access_log=False,
        ssl_certfile=args.tls_cert,
        ssl_keyfile=args.tls_key,
        server_header=False,
        timeout_graceful_shutdown=2,  # open event streams never end by themselves
    )
    server = uvicorn.Server(config)
    scheme = "https" if args.tls_cert else "http"
    shown = f"[{args.host.strip('[]')}]" if ":" in args.host else args.host
    logging.getLogger(PROG).info("serving on %s://%s:%d/", scheme, shown, args.port)
    try:
        with sock:
            server.run(sockets=[sock])
    except SystemExit as exc:  # uvicorn's "startup failed" (3): the reason is in the log above
        if exc.code in (None, 0):
            return EXIT_OK
        print("slr-web: error: the server could not start (see the log above)", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())

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
from typing import TYPE_CHECKING

from edge.commands.scaffold import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, add_version, run
from edge.util.signals import interrupt_on_signals

if TYPE_CHECKING:
    from edge.web.app import WebSettings
    from edge.web.options import WebOptions

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
    from edge.web.options import add_flags

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Serve the slovo-edge dashboard: live recognition, camera view with the skeleton, "
        "upload or record a clip.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_version(parser)
    add_flags(parser)  # declared once in edge.web.options
    return parser


def settings_from_args(args: argparse.Namespace) -> WebSettings:
    """Validate the options into :class:`edge.web.app.WebSettings`; ``ValueError`` with one line."""
    from edge.web.options import from_args

    return settings_from(from_args(args))


def settings_from(options: WebOptions) -> WebSettings:
    """What the declared bounds cannot say (pairs, files, the endpoint), then the settings."""
    from pathlib import Path

    from edge.web.app import WebSettings
    from edge.web.security import loopback_host, read_token
    from edge.web.transcript import default_state_dir, prepare_state_dir
    from edge.web.uploads import describe_model

    loopback = loopback_host(options.host)
    if not loopback and not options.allow_remote:
        raise ValueError(f"--host {options.host} is not loopback; pass --allow-remote and --token-file")
    if not loopback and options.token_file is None:
        raise ValueError("--allow-remote needs --token-file (a secret every request must present)")
    if (options.tls_cert is None) != (options.tls_key is None):
        raise ValueError("--tls-cert and --tls-key go together")
    check_endpoint(options.endpoint)
    if options.tls_cert is not None and options.tls_key is not None:
        check_tls(options.tls_cert, options.tls_key)
    keys = curve_keys(options.curve_server_key, options.curve_client_key)
    state_dir = prepare_state_dir(Path(options.state_dir) if options.state_dir else default_state_dir())
    token = read_token(options.token_file) if options.token_file else None
    from edge.models.resolve import resolve_model

    model = resolve_model(options.model) if options.model else None  # --model NAME: a fetched registry model
    info = asyncio.run(describe_model(model)) if model else None
    return WebSettings(
        endpoint=options.endpoint,
        model=model,
        model_info=info,
        token=token,
        loopback_only=loopback,
        secure_cookie=options.tls_cert is not None,
        max_upload_bytes=int(options.max_upload_mb * 1024 * 1024),
        upload_timeout_s=options.upload_timeout,
        upload_min_rate=options.upload_min_rate * 1024,
        worker_idle_s=options.worker_idle_s,
        curve_keys=keys,
        state_dir=state_dir,
        min_confidence=options.min_confidence,
    )


def curve_keys(server_key: str | None, client_key: str | None) -> tuple[bytes, bytes, bytes] | None:
    """(server public, client public, client secret) from the two key files, or None without CURVE.

    Read by :func:`edge.transport.keys.client_keys`, as every subscriber reads them; only the
    pairing message names slr-web's flags.
    """
    from edge.transport.keys import KeyFileError, client_keys

    if (server_key is None) != (client_key is None):
        raise ValueError("CURVE needs both --curve-server-key and --curve-client-key")
    try:
        return client_keys(server_key, client_key)
    except KeyFileError as exc:
        raise ValueError(str(exc)) from None


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
    from edge.web.options import from_args

    args = build_parser().parse_args(argv)
    try:
        options = from_args(args)
    except ValueError as exc:
        print(f"slr-web: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    logging.basicConfig(level=options.log_level, format="%(levelname)s %(name)s: %(message)s")
    # SIGTERM (systemd, docker stop) is a normal stop like Ctrl-C: exit 0 as the epilog says.
    # uvicorn takes both signals while it serves and hands them back here when it has stopped.
    with interrupt_on_signals():
        try:
            return _serve(options)
        except KeyboardInterrupt:
            return EXIT_OK


def _serve(options: WebOptions) -> int:
    import uvicorn

    from edge.web.app import build_app
    from edge.web.security import TokenError
    from edge.web.server import StoppingServer

    try:
        settings = settings_from(options)
    except (ValueError, TokenError) as exc:
        print(f"slr-web: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    host, port = options.host, options.port
    try:
        sock = listen_socket(host, port)
    except socket.gaierror as exc:  # a --host that names nothing is a bad option
        print(f"slr-web: error: --host {host}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"slr-web: error: cannot listen on {host}:{port}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_FAILURE
    app = build_app(settings)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=options.log_level.lower(),
        access_log=False,
        ssl_certfile=options.tls_cert,
        ssl_keyfile=options.tls_key,
        server_header=False,
        timeout_graceful_shutdown=2,  # open event streams never end by themselves
    )
    server = StoppingServer(config, app.state.stopping)
    scheme = "https" if options.tls_cert else "http"
    shown = f"[{host.strip('[]')}]" if ":" in host else host
    logging.getLogger(PROG).info("serving on %s://%s:%d/", scheme, shown, port)
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

"""Raw HTTP/1.1 on a socket, for requests no polite client would send (odd headers, stalled bodies).

``http.client`` normalises what it sends and waits for whole bodies; the web security and hostile
HTTP tests need byte-exact requests, bodies that stop half-way, and answers read while the request
is still being sent.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import time
from dataclasses import dataclass, field

Header = tuple[str | bytes, str | bytes]


def _b(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8")


def build_request(
    method: str,
    path: str,
    headers: list[Header] = (),  # type: ignore[assignment]
    body: bytes | None = None,
    *,
    host: str | bytes | None = "127.0.0.1",
    chunked: bool = False,
) -> bytes:
    """The request's bytes: header values are sent exactly as given (str as UTF-8)."""
    lines = [f"{method} {path} HTTP/1.1".encode()]
    if host is not None:
        lines.append(b"Host: " + _b(host))
    lines += [_b(name) + b": " + _b(value) for name, value in headers]
    lines.append(b"Connection: close")
    if chunked:
        lines.append(b"Transfer-Encoding: chunked")
    elif body is not None:
        lines.append(b"Content-Length: %d" % len(body))
    head = b"\r\n".join(lines) + b"\r\n\r\n"
    if body is None:
        return head
    return head + (chunk(body) + b"0\r\n\r\n" if chunked else body)


def chunk(data: bytes) -> bytes:
    """One chunk of the chunked transfer encoding."""
    return b"%x\r\n%s\r\n" % (len(data), data)


@dataclass
class Reply:
    status: int  # 0: no answer (the server closed without one)
    headers: dict[str, str] = field(default_factory=dict)  # lower-cased names; the last of repeats
    body: bytes = b""
    raw: bytes = b""
    set_cookies: list[str] = field(default_factory=list)


def parse_reply(raw: bytes) -> Reply:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    try:
        status = int(lines[0].split(b" ", 2)[1])
    except (IndexError, ValueError):
        return Reply(0, raw=raw)
    headers: dict[str, str] = {}
    cookies = []
    for line in lines[1:]:
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
        if name.strip().lower() == "set-cookie":
            cookies.append(value.strip())
    if headers.get("transfer-encoding") == "chunked":
        body = _dechunk(body)
    return Reply(status, headers, body, raw, cookies)


def _dechunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, sep, rest = data.partition(b"\r\n")
        if not sep:
            break
        try:
            size = int(size_line.split(b";")[0] or b"0", 16)
        except ValueError:
            break
        if size == 0:
            break
        out += rest[:size]
        data = rest[size + 2 :]
    return out


def connect(
    port: int, *, tls: bool = False, timeout: float = 30.0, source: str | None = None
) -> socket.socket:
    """A connection to 127.0.0.1:``port``, from ``source`` (another 127.x address: another client)."""
    address = (source, 0) if source else None
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=address)
    if tls:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        sock = context.wrap_socket(sock, server_hostname="localhost")
    return sock


def read_reply(sock: socket.socket, timeout: float = 30.0) -> Reply:
    """Everything the server sends until it closes (requests say ``Connection: close``)."""
    raw = b""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        sock.settimeout(left)
        try:
            data = sock.recv(65536)
        except (TimeoutError, ConnectionResetError, ssl.SSLError):
            break
        if not data:
            break
        raw += data
    return parse_reply(raw)


def exchange(
    port: int, data: bytes, *, tls: bool = False, timeout: float = 30.0, source: str | None = None
) -> Reply:
    """Send ``data`` (all of it, unless the server stops reading) and read the answer."""
    import select

    with connect(port, tls=tls, timeout=timeout, source=source) as sock:
        # In pieces, stopping once the server answers (413, 400): writing on into a socket it has
        # closed would reset the connection and lose the answer.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            for start in range(0, len(data), 1 << 16):
                if start and select.select([sock], [], [], 0)[0]:
                    break
                sock.sendall(data[start : start + (1 << 16)])
        return read_reply(sock, timeout)


def send_until_answered(
    port: int, head: bytes, pieces: object, *, timeout: float = 60.0
) -> tuple[Reply, int]:
    """Send ``head`` then each piece of the iterable ``pieces`` until the server answers.

    Returns the answer and how many body bytes were sent: a limit enforced while streaming
    answers long before a 200 MB body is through.
    """
    import select

    sent = 0
    with connect(port, timeout=timeout) as sock:
        sock.sendall(head)
        try:
            for piece in pieces:  # type: ignore[attr-defined]
                if select.select([sock], [], [], 0)[0]:
                    break
                sock.sendall(piece)
                sent += len(piece)
        except (BrokenPipeError, ConnectionResetError):
            pass
        return read_reply(sock, timeout), sent

"""One URL → one ``.part`` file, resumable, bounded, and suspicious of the server.

Why not a one-line ``requests.get``: the bytes come from a server we do not control, over links
that drop. So a download here resumes what an earlier run left (HTTP ``Range``, checked against
the answer's ``Content-Range``), refuses a declared size that exceeds the limit or the free disk
before reading a byte, stops a body that grows past what was declared or allowed, gives up on a
server that stalls or trickles (read timeout and a minimum average rate), follows at most
:data:`MAX_REDIRECTS` redirects, and retries a dropped connection only while each try makes
progress. Google Drive's "can't scan this file for viruses" page is answered with gdown's own
parser of that page (``gdown.download.get_url_from_gdrive_confirmation``), so we keep no scraper.

Proxies come from the environment (requests' ``trust_env``). The progress bar shows only on a
terminal: under systemd the journal gets no carriage-return noise.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import requests
import urllib3
from tqdm import tqdm

from edge import __version__
from edge.models.errors import BadSource, FetchFailed
from edge.util.redact import redact

#: Environment overrides (an unusual site, and the tests): seconds, bytes.
TIMEOUT_ENV = "SLOVO_MODEL_TIMEOUT"
MAX_BYTES_ENV = "SLOVO_MODEL_MAX_BYTES"
DEFAULT_TIMEOUT_S = 30.0
#: The full-size published checkpoint is ~100 MB; nothing we fetch comes near 2 GiB.
DEFAULT_MAX_BYTES = 2 << 30
#: Slower than this on average over a whole timeout window counts as stalled (a slow-loris server).
MIN_RATE_BPS = 1024
#: Room kept free on the cache's file system beyond the download itself.
FREE_SPACE_MARGIN = 16 << 20
MAX_REDIRECTS = 10
#: Tries of one download; a try that received nothing ends the download at once.
ATTEMPTS = 5
#: Google Drive answers a large file with an HTML confirmation page at most this many times.
DRIVE_HOPS = 3
CHUNK = 1 << 16
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


@dataclass(frozen=True)
class Limits:
    """How long to wait and how much to accept."""

    timeout_s: float = DEFAULT_TIMEOUT_S
    max_bytes: int = DEFAULT_MAX_BYTES

    @classmethod
    def from_env(cls, max_bytes: int = DEFAULT_MAX_BYTES) -> Limits:
        """The limits, with ``SLOVO_MODEL_TIMEOUT`` / ``SLOVO_MODEL_MAX_BYTES`` applied."""
        timeout, limit = DEFAULT_TIMEOUT_S, max_bytes
        try:
            if os.environ.get(TIMEOUT_ENV):
                timeout = float(os.environ[TIMEOUT_ENV])
            if os.environ.get(MAX_BYTES_ENV):
                limit = min(limit, int(os.environ[MAX_BYTES_ENV]))
        except ValueError:
            raise BadSource(f"{TIMEOUT_ENV} / {MAX_BYTES_ENV} must be numbers") from None
        if not (timeout > 0 and limit > 0):
            raise BadSource(f"{TIMEOUT_ENV} and {MAX_BYTES_ENV} must be positive")
        return cls(timeout_s=timeout, max_bytes=limit)


def human_size(size: float) -> str:
    """``1.5 MB``-style size for messages."""
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


def new_session() -> requests.Session:
    """A session that takes proxies from the environment and follows few redirects."""
    session = requests.Session()
    session.max_redirects = MAX_REDIRECTS
    session.headers.update(
        {
            "User-Agent": f"slovo-edge/{__version__} (slr-model)",
            # Byte ranges and checksums are about the bytes on the server, not a re-encoding.
            "Accept-Encoding": "identity",
        }
    )
    return session


def drive_download_url(url: str) -> str | None:
    """The direct-download URL of a Google Drive file link (``/uc?id=``, ``/file/d/ID/view``), or None."""
    from gdown.parse_url import parse_url

    file_id, _ = parse_url(url)
    if not file_id:
        return None
    return f"https://drive.google.com/uc?id={file_id}&export=download"


def drive_confirmation_url(page: str) -> str:
    """The URL behind Drive's large-file confirmation ``page`` (gdown's parser), else :class:`BadSource`."""
    from gdown.download import get_url_from_gdrive_confirmation
    from gdown.exceptions import FileURLRetrievalError

    try:
        return get_url_from_gdrive_confirmation(page)
    except FileURLRetrievalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "no download link"
        raise BadSource(f"Google Drive did not offer the file: {first}") from None


class _Useless(FetchFailed):
    """A failure after which the ``.part`` file is worth nothing (full disk, oversized body): removed."""


class _Restart(Exception):
    """The server ignored or botched a resume: start again from byte 0."""


class _Dropped(Exception):
    """The connection ended before the declared size; resume if this try made progress."""


class _Stream:
    """One try: one response appended to the ``.part`` file."""

    def __init__(
        self, session: requests.Session, url: str, part: Path, limits: Limits, progress: bool, label: str
    ) -> None:
        self.session, self.url, self.part, self.limits = session, url, part, limits
        self.progress, self.label = progress, label
        self.shown = redact(url)

    def _get(self, offset: int) -> requests.Response:
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        url = self.url
        for _ in range(DRIVE_HOPS + 1):
            response = self.session.get(
                url, headers=headers, stream=True, timeout=(self.limits.timeout_s, self.limits.timeout_s)
            )
            drive = (
                drive_download_url(response.url) is not None or "drive.usercontent.google.com" in response.url
            )
            html = response.headers.get("Content-Type", "").startswith("text/html")
            if not (drive and html and "Content-Disposition" not in response.headers):
                return response
            page = response.raw.read(1 << 20, decode_content=True).decode("utf-8", "replace")
            response.close()
            url = drive_confirmation_url(page)
        raise BadSource(f"Google Drive kept answering {self.shown} with a page instead of the file")

    def run(self, expected_size: int | None) -> tuple[int, int | None]:
        """Append to ``part``; returns ``(bytes now in part, total size or None)``."""
        offset = self.part.stat().st_size if self.part.exists() else 0
        if expected_size is not None and offset >= expected_size:
            offset = 0  # complete (or longer) already: its checksum failed before, or it is stale
        response = self._get(offset)
        with response:
            total = self._check_status(response, offset)
            if response.status_code == 200:
                offset = 0
            if total is not None:
                self._check_size(total, offset, expected_size)
            return self._copy(response, offset, total), total

    def _check_status(self, response: requests.Response, offset: int) -> int | None:
        code = response.status_code
        if code == 416 and offset:
            raise _Restart("the server refused the resume range")
        if 400 <= code < 500:
            raise BadSource(f"{self.shown}: the server answered {code} {response.reason}")
        if code not in (200, 206):
            raise FetchFailed(f"{self.shown}: the server answered {code} {response.reason}")
        if response.headers.get("Content-Type", "").startswith("text/html"):
            raise BadSource(f"{self.shown} is an HTML page, not a model (a login, quota or error page?)")
        length = response.headers.get("Content-Length")
        declared = int(length) if length and length.isdigit() else None
        if code == 200:
            return declared
        match = _CONTENT_RANGE.match(response.headers.get("Content-Range", "").strip())
        if not offset or match is None or int(match.group(1)) != offset:
            raise _Restart(
                f"the server answered a resume from byte {offset} with "
                f"{response.headers.get('Content-Range', 'no Content-Range')!r}"
            )
        total = None if match.group(3) == "*" else int(match.group(3))
        if total is not None and int(match.group(2)) != total - 1:
            raise _Restart("the server's Content-Range does not run to the end of the file")
        if declared is not None and total is not None and declared != total - offset:
            raise _Restart("the server's Content-Length disagrees with its Content-Range")
        return total

    def _check_size(self, total: int, offset: int, expected_size: int | None) -> None:
        if expected_size is not None and total != expected_size:
            raise BadSource(
                f"{self.shown} is {total} bytes but {expected_size} were expected (not the published file)"
            )
        if total > self.limits.max_bytes:
            raise BadSource(
                f"{self.shown} declares {human_size(total)}, more than the limit of "
                f"{human_size(self.limits.max_bytes)} ({MAX_BYTES_ENV})"
            )
        free = shutil.disk_usage(self.part.parent).free
        if total - offset + FREE_SPACE_MARGIN > free:
            raise FetchFailed(
                f"{self.shown} needs {human_size(total - offset)} but only {human_size(free)} are free "
                f"in {self.part.parent}"
            )

    def _copy(self, response: requests.Response, offset: int, total: int | None) -> int:
        limit = total if total is not None else self.limits.max_bytes
        window = self.limits.timeout_s
        received = offset
        with (
            open(self.part, "ab" if offset else "wb") as out,
            tqdm(
                total=total,
                initial=offset,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=self.label,
                disable=not self.progress,
                leave=False,
                file=sys.stderr,
            ) as bar,
        ):
            window_start, window_bytes = time.monotonic(), 0
            while True:
                chunk = response.raw.read1(CHUNK)
                if not chunk:
                    break
                received += len(chunk)
                if received > limit:
                    what = "its declared size" if total is not None else f"the limit ({MAX_BYTES_ENV})"
                    raise _Useless(f"{self.shown} sent more than {what}: {human_size(limit)}")
                _write(out, chunk, self.part)
                bar.update(len(chunk))
                window_bytes += len(chunk)
                now = time.monotonic()
                if now - window_start >= window:
                    if window_bytes < MIN_RATE_BPS * window:
                        raise FetchFailed(
                            f"{self.shown} is too slow: {window_bytes} bytes in {now - window_start:.0f} s "
                            f"(under {MIN_RATE_BPS} B/s; {TIMEOUT_ENV} sets the window)"
                        )
                    window_start, window_bytes = now, 0
        if total is not None and received < total:
            raise _Dropped(f"the connection ended at {received} of {total} bytes")
        return received


def _write(out: object, chunk: bytes, part: Path) -> None:
    try:
        out.write(chunk)  # type: ignore[attr-defined]
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            raise _Useless(f"the disk is full: cannot write {part.parent} ({exc.strerror})") from None
        raise FetchFailed(f"cannot write {part}: {exc.strerror or exc}") from None


#: Network errors that end a try (the message is the transfer's, never a traceback).
_NETWORK_ERRORS = (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError)


def download(
    url: str,
    part: Path,
    *,
    expected_size: int | None = None,
    limits: Limits | None = None,
    progress: bool = False,
    label: str = "",
    session: requests.Session | None = None,
    on_retry: Callable[[str], None] | None = None,
) -> int:
    """Download ``url`` into ``part`` (resuming a previous ``part``); returns its size.

    On :class:`FetchFailed` for a dropped link the ``part`` stays for the next run to resume; for a
    full disk, a server that lies about ranges, or anything that cannot be resumed, it is removed.
    """
    limits = limits or Limits.from_env()
    session = session or new_session()
    url = drive_download_url(url) or url  # a Drive share link → its download endpoint
    stream = _Stream(session, url, part, limits, progress, label)
    restarted = False
    for attempt in range(1, ATTEMPTS + 1):
        before = part.stat().st_size if part.exists() else 0
        try:
            size, _ = stream.run(expected_size)
            return size
        except _Restart as exc:
            part.unlink(missing_ok=True)
            if restarted:
                raise FetchFailed(f"{stream.shown}: {exc}") from None
            restarted = True
            if on_retry:
                on_retry(f"{exc}; starting again from byte 0")
        except _Dropped as exc:
            now = part.stat().st_size if part.exists() else 0
            if now <= before or attempt == ATTEMPTS:
                raise FetchFailed(f"{stream.shown}: {exc}; run again to resume") from None
            if on_retry:
                on_retry(f"{exc}; resuming")
        except _Useless:
            part.unlink(missing_ok=True)
            raise
        except requests.exceptions.TooManyRedirects:
            raise FetchFailed(
                f"{stream.shown}: more than {MAX_REDIRECTS} redirects (a redirect loop?)"
            ) from None
        except _NETWORK_ERRORS as exc:
            now = part.stat().st_size if part.exists() else 0
            reason = _network_reason(exc, limits)
            if now <= before or attempt == ATTEMPTS:
                raise FetchFailed(f"{stream.shown}: {reason}") from None
            if on_retry:
                on_retry(f"{reason}; resuming at byte {now}")
    raise FetchFailed(f"{stream.shown}: gave up after {ATTEMPTS} tries")


def _network_reason(exc: BaseException, limits: Limits) -> str:
    if isinstance(exc, (requests.exceptions.Timeout, urllib3.exceptions.TimeoutError, TimeoutError)):
        return f"no answer for {limits.timeout_s:g} s (timed out)"
    if isinstance(exc, requests.exceptions.ConnectionError):
        return "cannot connect (or the connection broke)"
    text = redact(str(exc)).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__

"""The hostile-server corpus for ``slr-model``: every answer a server must not be trusted with.

Redirect loop, endless body, a Content-Length that lies either way, a wrong Content-Range on
resume, a declared size beyond the limit or the free disk (refused before a byte is read), a
server that trickles or goes silent, error statuses. Each ends in one line with the documented
exit code and nothing in the target directory; most are checked through the command, the
free-space case in-process (a full disk cannot be arranged for a subprocess). Google Drive
cannot be reached here, so its confirmation page is one written for this test, parsed by the
same gdown code the download uses.
"""

from __future__ import annotations

import os
import socket
import time
from collections import namedtuple
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers_model_server import ModelServer, Route, blobs, one_line_error, sha, slr_model

from edge.models import download as dl
from edge.models.errors import BadSource, FetchFailed

DATA = os.urandom(300_000)


@pytest.fixture
def server() -> Iterator[ModelServer]:
    with ModelServer() as srv:
        yield srv


@pytest.fixture
def unused_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def fetch(server: ModelServer, cache: Path, path: str, *extra: str, **env: str):  # type: ignore[no-untyped-def]
    target = cache.parent / "target"
    result = slr_model(["fetch", server.url(path), "--to", str(target), *extra], cache, timeout=120, **env)
    return result, target


def nothing_left(cache: Path, target: Path) -> None:
    assert not target.exists() or not any(target.iterdir())
    assert blobs(cache) == []


def test_redirect_loop(server: ModelServer, cache: Path) -> None:
    server.routes["/loop.onnx"] = Route(redirect="/loop.onnx")
    result, target = fetch(server, cache, "/loop.onnx")
    one_line_error(result, 1, "redirect")
    nothing_left(cache, target)
    assert len(server.requests_for("/loop.onnx")) == dl.MAX_REDIRECTS + 1


def test_endless_body_stops_at_the_limit(server: ModelServer, cache: Path) -> None:
    server.routes["/endless.onnx"] = Route(body=b"\0" * 65536, endless=True)
    result, target = fetch(server, cache, "/endless.onnx", SLOVO_MODEL_MAX_BYTES="2000000")
    one_line_error(result, 1, "sent more than the limit")
    nothing_left(cache, target)
    assert not any((cache / "partial").iterdir())


def test_content_length_longer_than_the_body(server: ModelServer, cache: Path) -> None:
    server.routes["/liar.onnx"] = Route(body=DATA, length=len(DATA) + 1000)
    result, target = fetch(server, cache, "/liar.onnx")
    one_line_error(result, 1)
    nothing_left(cache, target)
    assert len(server.requests_for("/liar.onnx")) <= 2 * dl.ATTEMPTS  # gives up, does not loop


def test_content_length_shorter_than_the_body(server: ModelServer, cache: Path) -> None:
    server.routes["/short.onnx"] = Route(body=DATA, length=len(DATA) // 2)
    result, target = fetch(server, cache, "/short.onnx", "--sha256", sha(DATA))
    one_line_error(result, 2, "checksum mismatch")
    nothing_left(cache, target)


def test_wrong_content_range_on_resume_starts_again(server: ModelServer, cache: Path) -> None:
    half = len(DATA) // 2
    server.routes["/range.onnx"] = Route(body=DATA, drop_after=half, wrong_range_start=0)
    part = cache / "part"
    cache.mkdir()
    notes: list[str] = []
    dl.download(server.url("/range.onnx"), part, on_retry=notes.append)
    assert part.read_bytes() == DATA
    assert server.requests_for("/range.onnx") == [None, f"bytes={half}-", None]
    assert any("starting again from byte 0" in note for note in notes)


def test_ten_gigabytes_declared_are_refused_before_download(server: ModelServer, cache: Path) -> None:
    server.routes["/huge.onnx"] = Route(body=b"", length=10_000_000_000, silent_s=30)
    started = time.monotonic()
    result, target = fetch(server, cache, "/huge.onnx")
    assert time.monotonic() - started < 20  # did not wait for the (silent) body
    one_line_error(result, 2, "declares 10.0 GB")
    nothing_left(cache, target)


def test_a_size_beyond_the_free_disk_is_refused_before_download(
    server: ModelServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.routes["/big.onnx"] = Route(body=DATA)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(dl.shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 1000, 1000))
    part = tmp_path / "x.part"
    with pytest.raises(FetchFailed, match=r"needs 300\.0 kB but only 1\.0 kB are free"):
        dl.download(server.url("/big.onnx"), part)
    assert not part.exists()


def test_a_trickling_server_is_given_up(server: ModelServer, cache: Path) -> None:
    server.routes["/loris.onnx"] = Route(body=DATA, chunk=10, delay=0.2)
    started = time.monotonic()
    result, target = fetch(server, cache, "/loris.onnx", SLOVO_MODEL_TIMEOUT="1")
    assert time.monotonic() - started < 30
    one_line_error(result, 1, "too slow")
    nothing_left(cache, target)


def test_a_silent_server_times_out(server: ModelServer, cache: Path) -> None:
    server.routes["/silent.onnx"] = Route(body=DATA, silent_s=20)
    started = time.monotonic()
    result, target = fetch(server, cache, "/silent.onnx", SLOVO_MODEL_TIMEOUT="1")
    assert time.monotonic() - started < 15
    one_line_error(result, 1, "timed out")
    nothing_left(cache, target)


@pytest.mark.parametrize(("status", "code"), [(404, 2), (403, 2), (500, 1), (503, 1)])
def test_error_statuses(server: ModelServer, cache: Path, status: int, code: int) -> None:
    server.routes["/err.onnx"] = Route(status=status, body=b"no", content_type="text/plain")
    result, target = fetch(server, cache, "/err.onnx")
    one_line_error(result, code, str(status))
    nothing_left(cache, target)


def test_nothing_listens(cache: Path, unused_port: int) -> None:
    result = slr_model(["fetch", f"http://127.0.0.1:{unused_port}/m.onnx"], cache, timeout=60)
    one_line_error(result, 1, "cannot connect")


def test_credentials_in_a_url_are_never_printed(server: ModelServer, cache: Path) -> None:
    result = slr_model(
        ["fetch", server.url("/missing.onnx").replace("http://", "http://user:s3cret@")], cache
    )
    one_line_error(result, 2, "404")
    assert "s3cret" not in result.stderr + result.stdout


def test_other_schemes_and_missing_files_are_bad_input(cache: Path) -> None:
    for source in ("ftp://example.org/m.onnx", "file:///etc/passwd", "no-such-model"):
        one_line_error(slr_model(["fetch", source], cache), 2, "not a registry name")


# -- Google Drive: the real parser on a page written here ----------------------------------------

CONFIRMATION_PAGE = "\n".join(
    [
        "<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning</title></head>",
        '<body><div class="uc-main"><p class="uc-warning-subcaption">Google Drive can\'t scan this file',
        "for viruses. model_weights.pth (98M) is too large for Google to scan. Download anyway?</p>",
        '<form id="download-form" action="https://drive.usercontent.google.com/download" method="get">'
        '<input type="submit" id="uc-download-link" value="Download anyway"/>'
        '<input type="hidden" name="id" value="1lYCjuyxT8t3lebfIgO4sc1NyPe-WFZUs">'
        '<input type="hidden" name="export" value="download"><input type="hidden" name="confirm" value="t">'
        '<input type="hidden" name="uuid" value="0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"></form>',
        "</div></body></html>",
    ]
)
ERROR_PAGE = "\n".join(
    [
        '<html><body><div class="uc-main"><p class="uc-error-caption">Sorry, you can\'t download it now.</p>',
        '<p class="uc-error-subcaption">Too many users have viewed or downloaded this file recently.</p>',
        "</div></body></html>",
    ]
)


def test_drive_links_become_direct_download_urls() -> None:
    file_id = "1lYCjuyxT8t3lebfIgO4sc1NyPe-WFZUs"
    direct = f"https://drive.google.com/uc?id={file_id}&export=download"
    assert dl.drive_download_url(f"https://drive.google.com/uc?id={file_id}") == direct
    assert dl.drive_download_url(f"https://drive.google.com/file/d/{file_id}/view?usp=sharing") == direct
    assert dl.drive_download_url("https://example.org/uc?id=abc") is None


def test_drive_confirmation_page_gives_the_file_url() -> None:
    url = dl.drive_confirmation_url(CONFIRMATION_PAGE)
    assert url.startswith("https://drive.usercontent.google.com/download?")
    for part in ("id=1lYCjuyxT8t3lebfIgO4sc1NyPe-WFZUs", "export=download", "confirm=t", "uuid=0f1e2d3c-"):
        assert part in url


def test_drive_quota_page_is_one_line() -> None:
    with pytest.raises(BadSource, match="Too many users have viewed or downloaded this file recently"):
        dl.drive_confirmation_url(ERROR_PAGE)
    with pytest.raises(BadSource, match="Google Drive did not offer the file"):
        dl.drive_confirmation_url("<html><body>nothing here</body></html>")

"""``slr-model`` as users run it, against a model server on 127.0.0.1.

The server publishes ``../shared/reference/slr_slovo/tiny_checkpoint.pt`` the way SLR_SLOVO
publishes its weights (a bare state_dict) next to a mapping JSON in the seed's own format
(``sign2ord``, ``ord2sign``, ``class_names``) with Cyrillic names, and a prebuilt ``.onnx``.
Every command runs as a subprocess with its own cache (``SLOVO_MODEL_CACHE``), so what is
checked is what a user sees: the path on stdout, one line on stderr, the exit code, and the
files left behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO_ROOT
from helpers_model_server import (
    CLI,
    MAPPING,
    NAMES,
    NO_TORCH,
    ModelServer,
    Route,
    blobs,
    env_for,
    one_line_error,
    sha,
    slr_model,
)


@pytest.fixture(scope="module")
def checkpoint_bytes(reference_dir: Path) -> bytes:
    return (reference_dir / "tiny_checkpoint.pt").read_bytes()


@pytest.fixture(scope="module")
def onnx_bytes(tiny_onnx_path: Path) -> bytes:
    return tiny_onnx_path.read_bytes()


@pytest.fixture
def server(checkpoint_bytes: bytes, onnx_bytes: bytes) -> Iterator[ModelServer]:
    with ModelServer() as srv:
        srv.routes["/tiny.pt"] = Route(body=checkpoint_bytes)
        srv.routes["/mappings.json"] = Route(body=json.dumps(MAPPING, ensure_ascii=False).encode())
        srv.routes["/tiny.onnx"] = Route(body=onnx_bytes)
        # The registry's file names, as a mirror serves them.
        srv.routes["/mirror/model_weights.pth"] = Route(body=checkpoint_bytes)
        srv.routes["/mirror/sign_language_model_mappings.json"] = srv.routes["/mappings.json"]
        yield srv


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def test_checkpoint_url_becomes_a_verified_onnx_with_the_mappings_labels_once(
    server: ModelServer, cache: Path, tmp_path: Path, checkpoint_bytes: bytes
) -> None:
    from edge.recognition.inference import load_model

    target = tmp_path / "models"
    args = ["fetch", server.url("/tiny.pt"), "--labels", server.url("/mappings.json"), "--to", str(target)]
    first = slr_model([*args, "--json"], cache)
    assert first.returncode == 0, first.stderr
    result = json.loads(first.stdout)
    assert result["path"] == str(target / "tiny.onnx")
    assert result["downloaded"] and result["exported"] and not result["untrained"]
    model = load_model(result["path"])
    assert list(model.labels) == NAMES
    assert model.source_sha256 == sha(checkpoint_bytes) == result["source_sha256"]
    assert sorted(os.listdir(target)) == ["tiny.onnx"]  # nothing else, no temporaries

    second = slr_model(args, cache)  # the plain form prints only the path
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip() == str(target / "tiny.onnx")
    assert "downloading" not in second.stderr and "exporting" not in second.stderr
    assert server.requests_for("/tiny.pt") == [None]  # fetched once
    assert server.requests_for("/mappings.json") == [None]

    listing = json.loads(slr_model(["list", "--json"], cache).stdout)
    others = {row["source"]: row for row in listing["other"]}
    assert others[server.url("/tiny.pt")] == {
        "source": server.url("/tiny.pt"),
        "sha256": sha(checkpoint_bytes),
        "size": len(checkpoint_bytes),
        "cached": True,
    }


def test_registry_name_through_the_mirror_then_model_name_resolves_in_the_daemon(
    server: ModelServer, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mirror = server.url("/mirror")
    fetched = slr_model(["fetch", "slovo-500", "--json"], cache, SLOVO_MODEL_MIRROR=mirror)
    assert fetched.returncode == 0, fetched.stderr
    result = json.loads(fetched.stdout)
    assert result["name"] == "slovo-500" and result["labels"] == len(NAMES)
    assert server.requests_for("/mirror/model_weights.pth") == [None]
    assert "drive.google.com" not in fetched.stderr

    listing = json.loads(slr_model(["list", "--json"], cache).stdout)
    (row,) = [r for r in listing["models"] if r["name"] == "slovo-500"]
    assert row["cached"] and row["model"] == result["path"]
    assert row["sha256"] == result["source_sha256"] and row["sha256_from"] == "first download"

    from edge.daemon.config import ConfigError, DaemonConfig

    monkeypatch.setenv("SLOVO_MODEL_CACHE", str(cache))
    assert DaemonConfig(model="slovo-500").validated().model == result["path"]
    assert DaemonConfig(model="some/path.onnx").validated().model == "some/path.onnx"  # paths unchanged
    with pytest.raises(ConfigError, match=r"slr-model fetch slovo-500 --int8"):
        DaemonConfig(model="slovo-500-int8").validated()

    # The int8 variant: nothing downloaded again, one more export, its own name.
    int8 = slr_model(["fetch", "slovo-500", "--int8", "--json"], cache, SLOVO_MODEL_MIRROR=mirror)
    assert int8.returncode == 0, int8.stderr
    quantised = json.loads(int8.stdout)
    assert quantised["name"] == "slovo-500-int8" and quantised["exported"] and not quantised["downloaded"]
    assert quantised["path"] != result["path"]
    assert server.requests_for("/mirror/model_weights.pth") == [None]
    assert DaemonConfig(model="slovo-500-int8").validated().model == quantised["path"]
    assert DaemonConfig(model="slovo-500").validated().model == result["path"]


def test_daemon_names_an_unfetched_registry_model_and_how_to_fetch_it(tmp_path: Path) -> None:
    env = env_for(tmp_path / "empty-cache")
    result = subprocess.run(
        [sys.executable, "-c", "import sys; from edge.commands.edge_cli import main; sys.exit(main())",
         "check-model", "slovo-500"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "slr-model fetch slovo-500" in result.stderr and "Traceback" not in result.stderr


def test_wrong_checksum_is_refused_and_nothing_is_kept(
    server: ModelServer, cache: Path, tmp_path: Path
) -> None:
    target = tmp_path / "out"
    result = slr_model(["fetch", server.url("/tiny.onnx"), "--sha256", "0" * 64, "--to", str(target)], cache)
    one_line_error(result, 2, "checksum mismatch")
    assert not any(target.iterdir()) and blobs(cache) == []
    assert not any((cache / "partial").iterdir())
    bad = slr_model(["fetch", server.url("/tiny.onnx"), "--sha256", "xyz"], cache)
    one_line_error(bad, 2, "--sha256 must be 64 hexadecimal digits")


def test_changed_bytes_are_refused_after_first_use_unless_accepted(
    server: ModelServer, cache: Path, onnx_bytes: bytes, tmp_path: Path
) -> None:
    url = server.url("/tiny.onnx")
    assert slr_model(["fetch", url], cache).returncode == 0
    record = json.loads((cache / "lock.json").read_text())[url]
    assert record["sha256"] == sha(onnx_bytes)

    server.routes["/tiny.onnx"] = Route(body=onnx_bytes + b"\0")  # the publisher swapped the file
    target = tmp_path / "out"
    refused = slr_model(["fetch", url, "--refresh", "--to", str(target)], cache)
    one_line_error(refused, 2, "changed since its first download", "--accept-new")
    assert not any(target.iterdir())
    assert [p.parent.name for p in blobs(cache)] == [sha(onnx_bytes)]  # the trusted file is still there

    accepted = slr_model(["fetch", url, "--refresh", "--accept-new", "--json"], cache)
    # The new bytes are trusted now, but they are still checked as a model: a trailing byte makes an
    # ONNX protobuf invalid, so the command fails on the content, not on the checksum.
    assert accepted.returncode in (0, 2), accepted.stderr
    assert "changed since" not in accepted.stderr
    assert json.loads((cache / "lock.json").read_text())[url]["sha256"] == sha(onnx_bytes + b"\0")


@pytest.mark.parametrize("content_type", ["text/html; charset=utf-8", "application/octet-stream"])
def test_an_html_page_is_refused(server: ModelServer, cache: Path, tmp_path: Path, content_type: str) -> None:
    page = b"<!DOCTYPE html><html><head><title>Sign in</title></head><body>Quota exceeded</body></html>"
    server.routes["/weights.pth"] = Route(body=page, content_type=content_type)
    target = tmp_path / "out"
    result = slr_model(["fetch", server.url("/weights.pth"), "--to", str(target)], cache)
    one_line_error(result, 2, "HTML page")
    assert not any(target.iterdir()) and blobs(cache) == []


def test_a_pickle_that_would_create_a_file_creates_nothing(
    server: ModelServer, cache: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str, str]]:
            return (open, (str(marker), "w"))

    import pickle

    server.routes["/evil.pt"] = Route(body=pickle.dumps({"weight": Evil()}, protocol=2))
    target = tmp_path / "out"
    result = slr_model(["fetch", server.url("/evil.pt"), "--to", str(target)], cache)
    one_line_error(result, 2, "not a readable PyTorch checkpoint")
    assert not marker.exists()
    assert not any(target.iterdir()) and not any((cache / "models").iterdir())


def test_a_state_dict_of_another_model_is_refused(server: ModelServer, cache: Path, tmp_path: Path) -> None:
    import io

    import torch

    buffer = io.BytesIO()
    torch.save({"backbone.conv1.weight": torch.zeros(3, 3)}, buffer)
    server.routes["/resnet.pth"] = Route(body=buffer.getvalue())
    target = tmp_path / "out"
    result = slr_model(["fetch", server.url("/resnet.pth"), "--labels", server.url("/mappings.json"),
                        "--to", str(target)], cache)  # fmt: skip
    one_line_error(result, 2)
    assert not any(target.iterdir()) and not any((cache / "models").iterdir())


def test_a_prebuilt_onnx_needs_no_torch(
    server: ModelServer, cache: Path, onnx_bytes: bytes, tmp_path: Path
) -> None:
    target = tmp_path / "device"
    result = slr_model(
        ["fetch", server.url("/tiny.onnx"), "--sha256", sha(onnx_bytes), "--to", str(target), "--json"],
        cache,
        cli=NO_TORCH,
    )
    assert result.returncode == 0, result.stderr
    fetched = json.loads(result.stdout)
    assert fetched["kind"] == "onnx" and not fetched["exported"]
    assert (target / "tiny.onnx").read_bytes() == onnx_bytes

    verify = slr_model(["verify", str(target / "tiny.onnx")], cache, cli=NO_TORCH)
    assert verify.returncode == 0 and "10 classes" in verify.stdout, verify.stderr

    checkpoint = slr_model(["fetch", server.url("/tiny.pt"), "--labels", server.url("/mappings.json")], cache,
                           cli=NO_TORCH)  # fmt: skip
    one_line_error(checkpoint, 2, "'train' extra", "pip install 'slovo-edge[train]'")


def test_verify_refuses_what_is_not_a_model(cache: Path, tmp_path: Path) -> None:
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x08\x07garbage")
    one_line_error(slr_model(["verify", str(junk)], cache), 2)
    one_line_error(slr_model(["verify", str(tmp_path / "missing.onnx")], cache), 2, "does not exist")


def test_a_dropped_connection_is_resumed(server: ModelServer, cache: Path, onnx_bytes: bytes) -> None:
    half = len(onnx_bytes) // 2
    server.routes["/flaky.onnx"] = Route(body=onnx_bytes, drop_after=half)
    result = slr_model(["fetch", server.url("/flaky.onnx"), "--sha256", sha(onnx_bytes)], cache)
    assert result.returncode == 0, result.stderr
    assert server.requests_for("/flaky.onnx") == [None, f"bytes={half}-"]
    assert Path(result.stdout.strip()).read_bytes() == onnx_bytes


def test_two_concurrent_fetches_download_once(server: ModelServer, cache: Path, onnx_bytes: bytes) -> None:
    server.routes["/slow.onnx"] = Route(body=onnx_bytes, chunk=len(onnx_bytes) // 20 + 1, delay=0.1)
    args = [*CLI, "fetch", server.url("/slow.onnx"), "--sha256", sha(onnx_bytes)]
    procs = [
        subprocess.Popen(
            args, cwd=REPO_ROOT, env=env_for(cache), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outs = [proc.communicate(timeout=300) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outs
    assert outs[0][0] == outs[1][0]
    assert server.requests_for("/slow.onnx") == [None]


def test_ctrl_c_leaves_nothing_in_the_target_and_the_next_run_resumes(
    server: ModelServer, cache: Path, onnx_bytes: bytes, tmp_path: Path
) -> None:
    server.routes["/slow.onnx"] = Route(body=onnx_bytes, chunk=len(onnx_bytes) // 50 + 1, delay=0.1)
    target = tmp_path / "out"
    args = [*CLI, "fetch", server.url("/slow.onnx"), "--sha256", sha(onnx_bytes), "--to", str(target)]
    proc = subprocess.Popen(args, cwd=REPO_ROOT, env=env_for(cache), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    part_dir = cache / "partial"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        parts = list(part_dir.glob("*.part")) if part_dir.exists() else []
        if parts and parts[0].stat().st_size > len(onnx_bytes) // 10:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and out == ""
    assert not any(target.iterdir()) and blobs(cache) == []
    (part,) = part_dir.glob("*.part")  # kept in the cache, only to resume
    kept = part.stat().st_size
    assert 0 < kept < len(onnx_bytes)

    server.routes["/slow.onnx"] = Route(body=onnx_bytes)
    again = slr_model(args[len(CLI) :], cache)
    assert again.returncode == 0, again.stderr
    assert server.requests_for("/slow.onnx")[-1] == f"bytes={kept}-"
    assert (target / "slow.onnx").read_bytes() == onnx_bytes
    assert not any(part_dir.iterdir())


def test_a_full_disk_fails_cleanly(server: ModelServer, cache: Path, tmp_path: Path) -> None:
    """The child may write at most 200 kB per file (RLIMIT_FSIZE), as if the disk filled up."""
    import resource

    server.routes["/big.onnx"] = Route(body=os.urandom(1_000_000))

    def small_disk() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))

    target = tmp_path / "out"
    target.mkdir()
    (cache / "blobs").mkdir(parents=True)  # the small limit must hit the download, not the setup
    proc = subprocess.run(
        [*CLI, "fetch", server.url("/big.onnx"), "--to", str(target)],
        cwd=REPO_ROOT, env=env_for(cache), capture_output=True, text=True, timeout=120, preexec_fn=small_disk,
    )  # fmt: skip
    one_line_error(proc, 1, "disk is full")
    assert not any(target.iterdir()) and blobs(cache) == []
    assert not any((cache / "partial").iterdir())  # the space is given back


def test_help_has_examples_and_exit_codes(cache: Path) -> None:
    result = slr_model(["--help"], cache)
    assert result.returncode == 0
    for needle in (
        "examples:",
        "slr-model fetch slovo-500",
        "exit codes:",
        "SLOVO_MODEL_MIRROR",
        "--accept-new",
    ):
        assert needle in result.stdout
    assert slr_model([], cache).returncode == 2


@pytest.mark.parametrize(
    ("module", "args"),
    [
        ("edge.commands.predict", ["clip.mp4", "--model", "slovo-500"]),
        ("edge.commands.web", ["--model", "slovo-500", "--port", "1"]),
    ],
)
def test_predict_and_web_name_an_unfetched_registry_model(
    module: str, args: list[str], tmp_path: Path
) -> None:
    result = subprocess.run(
        [sys.executable, "-c", f"import sys; from {module} import main; sys.exit(main())", *args],
        cwd=tmp_path, env=env_for(tmp_path / "empty-cache"), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "slr-model fetch slovo-500" in result.stderr and "Traceback" not in result.stderr


def test_a_damaged_cache_file_is_downloaded_again(
    server: ModelServer, cache: Path, onnx_bytes: bytes
) -> None:
    url = server.url("/tiny.onnx")
    assert slr_model(["fetch", url], cache).returncode == 0
    (blob,) = blobs(cache)
    blob.write_bytes(b"bit rot")
    again = slr_model(["fetch", url], cache)
    assert again.returncode == 0, again.stderr
    assert server.requests_for("/tiny.onnx") == [None, None]
    (blob,) = blobs(cache)
    assert blob.read_bytes() == onnx_bytes


def test_resolve_leaves_paths_alone_and_reports_a_broken_index_in_one_line(tmp_path: Path) -> None:
    from edge.models.cache import Cache
    from edge.models.resolve import ModelNotFetched, resolve_model

    cache = Cache(tmp_path / "cache")
    for value in ("model.onnx", "dir/slovo-500", "not-a-registry-name"):
        assert resolve_model(value, cache) == value
    (tmp_path / "slovo-500").write_bytes(b"")  # an existing file wins over the registry name
    assert resolve_model(str(tmp_path / "slovo-500"), cache) == str(tmp_path / "slovo-500")
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "installed.json").write_text("{not json")
    with pytest.raises(ModelNotFetched, match="cannot read the cache index"):
        resolve_model("slovo-500", cache)


def test_proxies_come_from_the_environment(server: ModelServer, cache: Path, onnx_bytes: bytes) -> None:
    """``model.invalid`` does not resolve: only the proxy (the test server) can answer for it."""
    server.routes["http://model.invalid/tiny.onnx"] = Route(body=onnx_bytes)
    result = slr_model(["fetch", "http://model.invalid/tiny.onnx", "--sha256", sha(onnx_bytes)], cache,
                       HTTP_PROXY=server.url(""), http_proxy=server.url(""))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert server.requests_for("http://model.invalid/tiny.onnx") == [None]

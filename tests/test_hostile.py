"""The standing guard against hostile input: a corpus generated here, run through all seven commands.

Nothing binary is committed: every bad file (empty, truncated, foreign, huge and sparse, special
files, damaged models and checkpoints, bad configs) is made at test time from the shared sample
clip, the reference checkpoint and small generated models. Each case is one command line run as
a user would run it, and must:

* end within its timeout (no hang),
* print no Python traceback,
* end with the exit code its ``--help`` documents,
* leave nothing behind that claims to be complete (no output file, no ``.npz``, no metrics),
* never print the camera password that some of the inputs carry.

Cases that end at start-up run one after another in a single interpreter through the same entry
points as the console scripts (:mod:`tests.helpers_batch`: importing torch once instead of a
hundred times); the others (daemons, signals, special files, worker pools) run as their own
processes in parallel. One test reports every misbehaving case at once. docs/RELIABILITY.md has the figures.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from tests.helpers_onnx import build_tiny_onnx, default_metadata

SECRET = "hunter2-secret"
CAMERA_URL = f"rtsp://admin:{SECRET}@127.0.0.1:9/stream"
BIN = Path(sys.executable).parent
#: Output that means a crash reached the user.
CRASH_MARKERS = ("Traceback (most recent call last)", "Exception ignored", "Fatal Python error")


@dataclass
class Case:
    """One hostile command line and what must come of it."""

    name: str
    argv: list[str]
    code: int
    #: Generous: a process that imports torch takes a minute on a loaded 2-core box; a hang is forever.
    timeout: float = 240.0
    #: Paths that must not exist afterwards (outputs that would claim to be complete).
    absent: list[Path] = field(default_factory=list)
    #: Text that must appear on stderr (the one-line reason).
    stderr_has: str = ""
    #: Extra check on the finished case (e.g. a symlink's target untouched).
    check: Callable[[], None] | None = None
    cost: int = 1  # start order: cheap first


@dataclass
class Outcome:
    code: int | None  # None: killed at the timeout
    out: str
    err: str
    seconds: float


# -- the corpus -----------------------------------------------------------------------------------


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", *args], check=True, timeout=120)


def _cut(src: Path, dst: Path, share: float) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * share)])
    return dst


def _nan_onnx(good: Path, dst: Path) -> Path:
    model = onnx.load(str(good))
    for index, init in enumerate(model.graph.initializer):
        if init.name == "W":
            weights = numpy_helper.to_array(init).copy()
            weights[:] = np.nan
            model.graph.initializer[index].CopyFrom(numpy_helper.from_array(weights, "W"))
    dst.write_bytes(model.SerializeToString())
    return dst


class Corpus:
    """Every hostile file, built once in ``root``."""

    def __init__(self, root: Path, shared: Path) -> None:
        import torch

        self.root = root
        sample = shared / "samples" / "slovo_sample.mp4"
        ckpt = shared / "reference" / "slr_slovo" / "tiny_checkpoint.pt"
        for path in (sample, ckpt):
            if not path.exists():
                pytest.fail(f"required shared test material is missing: {path}")
        self.sample = sample
        d = root / "files"
        d.mkdir()
        self.missing = d / "missing.mp4"
        self.empty = d / "empty.mp4"
        self.empty.write_bytes(b"")
        self.text = d / "text.mp4"
        self.text.write_text("this is not a video\n")
        self.random = d / "random.mp4"
        self.random.write_bytes(np.random.default_rng(0).bytes(200_000))
        self.sparse = d / "huge_sparse.mp4"  # 20 GB of holes: must fail fast, not be read
        with self.sparse.open("wb") as fh:
            fh.truncate(20 * 1024**3)
        self.fifo = d / "fifo.mp4"
        os.mkfifo(self.fifo)
        self.directory = d / "dir.mp4"
        self.directory.mkdir()
        self.loop = d / "loop.mp4"
        os.symlink(self.loop, self.loop)
        self.dangling = d / "dangling.mp4"
        os.symlink(d / "nowhere.mp4", self.dangling)
        self.dash = d / "-rf.mp4"
        self.dash.write_bytes(b"\x00" * 64)
        faststart = d / "faststart.mp4"
        _ffmpeg("-i", str(sample), "-c", "copy", "-movflags", "+faststart", str(faststart))
        self.trunc_mp4 = _cut(faststart, d / "trunc_faststart.mp4", 0.6)
        mkv = d / "whole.mkv"
        _ffmpeg("-i", str(sample), "-c", "copy", str(mkv))
        self.trunc_mkv = _cut(mkv, d / "trunc.mkv", 0.6)
        self.header_only = _cut(faststart, d / "header_only.mp4", 0.02)
        self.bad_videos = {
            "missing": self.missing,
            "empty": self.empty,
            "text": self.text,
            "random": self.random,
            "sparse": self.sparse,
            "fifo": self.fifo,
            "directory": self.directory,
            "symlink-loop": self.loop,
            "dangling": self.dangling,
            "header-only": self.header_only,
            "dev-null": Path("/dev/null"),
        }

        m = root / "models"
        m.mkdir()
        self.model = build_tiny_onnx(m / "good.onnx")
        raw = self.model.read_bytes()
        foreign = onnx.load(str(self.model))
        del foreign.metadata_props[:]
        (m / "foreign.onnx").write_bytes(foreign.SerializeToString())
        (m / "truncated.onnx").write_bytes(raw[: len(raw) // 2])
        (m / "empty.onnx").write_bytes(b"")
        (m / "random.onnx").write_bytes(np.random.default_rng(1).bytes(50_000))
        (m / "text.onnx").write_text("not a model\n")
        (m / "checkpoint.onnx").write_bytes(ckpt.read_bytes())
        os.mkfifo(m / "fifo.onnx")
        (m / "dir.onnx").mkdir()
        _nan_onnx(self.model, m / "nan.onnx")
        meta = default_metadata(("a", "b"))
        build_tiny_onnx(m / "fps_absurd.onnx", ("a", "b"), metadata={**meta, "slr.fps": "1e12"})
        build_tiny_onnx(m / "fps_nan.onnx", ("a", "b"), metadata={**meta, "slr.fps": "nan"})
        build_tiny_onnx(m / "fps_zero.onnx", ("a", "b"), metadata={**meta, "slr.fps": "0"})
        build_tiny_onnx(m / "window_huge.onnx", ("a", "b"), metadata={**meta, "slr.window": "1000000000"})
        build_tiny_onnx(m / "labels_bad.onnx", ("a", "b"), metadata={**meta, "slr.labels": "{not json"})
        build_tiny_onnx(m / "labels_mismatch.onnx", ("a", "b"), classes=5)
        build_tiny_onnx(m / "no_layout.onnx", ("a", "b"), drop_keys=("slr.layout",))
        build_tiny_onnx(m / "wrong_inputs.onnx", ("a", "b"), input_names=("x", "y"))
        self.bad_models = {p.stem: p for p in sorted(m.iterdir()) if p.name != "good.onnx"} | {
            "missing": m / "missing.onnx",
            "dev-null": Path("/dev/null"),
        }

        c = root / "checkpoints"
        c.mkdir()
        self.checkpoint = ckpt
        (c / "empty.pt").write_bytes(b"")
        (c / "random.pt").write_bytes(np.random.default_rng(2).bytes(10_000))
        _cut(ckpt, c / "truncated.pt", 0.5)
        (c / "text.pt").write_text("weights\n")
        torch.save([1, 2, 3], c / "list.pt")
        torch.save({}, c / "empty_dict.pt")
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        torch.save({key: torch.tensor(1.0) for key in state}, c / "all_scalar.pt")
        torch.save({**state, next(iter(state)): torch.tensor(3.0)}, c / "one_scalar.pt")
        torch.save({key: value.float().fill_(float("nan")) for key, value in state.items()}, c / "nan.pt")
        torch.save({key: value[..., :1] for key, value in state.items()}, c / "wrong_shapes.pt")
        os.mkfifo(c / "fifo.pt")
        (c / "dir.pt").mkdir()
        (c / "model.onnx.pt").write_bytes(raw)
        self.bad_checkpoints = {p.stem: p for p in sorted(c.iterdir())} | {"missing": c / "missing.pt"}

        k = root / "configs"
        k.mkdir()
        self.configs: dict[str, Path] = {}
        for name, body in {
            "not_toml": "this is = = not toml [",
            "unknown_key": 'frobnicate = 3\nsource = "' + CAMERA_URL + '"',
            "stride_negative": 'stride = -1\nsource = "' + CAMERA_URL + '"',
            "threshold_nan": 'threshold = nan\nsource = "' + CAMERA_URL + '"',
            "status_inf": 'status_interval_s = inf\nsource = "' + CAMERA_URL + '"',
            "stride_text": 'stride = "four"\nsource = "' + CAMERA_URL + '"',
            "binary": "",
            "endpoint_bad": 'endpoint = "carrier-pigeon://x"\nsource = "' + CAMERA_URL + '"',
            "endpoint_public": 'endpoint = "tcp://0.0.0.0:5599"\nsource = "' + CAMERA_URL + '"',
            "source_fifo": f'source = "{self.fifo}"',
            "source_dir": f'source = "{self.directory}"',
            "source_missing": f'source = "{self.missing}"',
        }.items():
            path = k / f"{name}.toml"
            path.write_text(body) if name != "binary" else path.write_bytes(b"\xff\xfe\x00garbage\x00")
            self.configs[name] = path

        dd = root / "data"
        dd.mkdir()
        self.empty_dir = dd / "empty"
        self.empty_dir.mkdir()
        self.junk_data = dd / "junk"
        self.junk_data.mkdir()
        (self.junk_data / "clip.npz").write_bytes(b"PK\x03\x04 not really")
        (self.junk_data / "annotations.csv").write_text(
            "attachment_id\ttext\tuser_id\theight\twidth\tlength\ttrain\n"
        )
        self.garbage_csv = dd / "garbage.csv"
        self.garbage_csv.write_bytes(b"\x00\x01\x02,,,\n\xff\xfe")
        self.a_file = dd / "a_file.txt"
        self.a_file.write_text("x")
        self.labels_empty = dd / "labels_empty.json"
        self.labels_empty.write_text("[]")
        self.out = root / "out"
        self.out.mkdir()


# -- the cases ------------------------------------------------------------------------------------


def _cmd(name: str) -> str:
    return str(BIN / name)


def _nothing_named(directory: Path, pattern: str) -> Callable[[], None]:
    def check() -> None:
        leftovers = sorted(p.name for p in directory.glob(pattern))
        assert not leftovers, f"left behind in {directory}: {leftovers}"

    return check


def build_cases(c: Corpus) -> list[Case]:
    cases: list[Case] = []
    add = cases.append
    good = str(c.model)
    sample = str(c.sample)

    # slr-edge check-model: every damaged model is one line and exit 2.
    for name, model in c.bad_models.items():
        add(Case(f"check-model/{name}", [_cmd("slr-edge"), "check-model", str(model)], 2, stderr_has="error"))
    add(Case("check-model/ok", [_cmd("slr-edge"), "check-model", good], 0))
    add(Case("check-model/json-ok", [_cmd("slr-edge"), "check-model", good, "--json"], 0))
    add(Case("check-model/no-arg", [_cmd("slr-edge"), "check-model"], 2))
    add(Case("slr-edge/no-command", [_cmd("slr-edge")], 2))
    add(Case("slr-edge/bogus-command", [_cmd("slr-edge"), "frobnicate"], 2))

    # slr-edge run: bad models, configs, sources, endpoints end at start-up with exit 2.
    run = [_cmd("slr-edge"), "run"]
    for name in ("missing", "truncated", "nan", "fps_absurd", "foreign", "fifo"):
        add(Case(f"run/model-{name}", [*run, "--model", str(c.bad_models[name]), "--source", sample], 2))
    for name, config in c.configs.items():
        add(Case(f"run/config-{name}", [*run, "--model", good, "--config", str(config)], 2))
    for name in ("missing", "empty", "text", "fifo", "directory", "symlink-loop", "dangling", "sparse"):
        add(Case(f"run/source-{name}", [*run, "--model", good, "--source", str(c.bad_videos[name])], 2))
    for name, flags in {
        "stride-0": ["--stride", "0"],
        "threshold-2": ["--threshold", "2"],
        "threshold-nan": ["--threshold", "nan"],
        "endpoint-bad": ["--endpoint", "carrier-pigeon://x"],
        "endpoint-public": ["--endpoint", "tcp://0.0.0.0:5598"],
        "endpoint-no-port": ["--endpoint", "tcp://127.0.0.1"],
        "config-missing": ["--config", str(c.missing)],
        "config-dir": ["--config", str(c.directory)],
        "config-fifo": ["--config", str(c.fifo)],
        "log-level": ["--log-level", "LOUD"],
    }.items():
        add(Case(f"run/{name}", [*run, "--model", good, "--source", sample, *flags], 2))

    # slr-listen: bad options and key files are 2; an endpoint nobody publishes on is 1 (timeout).
    listen = [_cmd("slr-listen")]
    quiet = f"ipc://{c.root / 'nobody.ipc'}"
    for name, flags, code in (
        ("count-0", ["--count", "0"], 2),
        ("count-negative", ["--count", "-3"], 2),
        ("count-text", ["--count", "many"], 2),
        ("timeout-nan", ["--timeout", "nan"], 2),
        ("timeout-negative", ["--timeout", "-1"], 2),
        ("timeout-inf", ["--timeout", "inf"], 2),
        ("topic-bogus", ["--topic", "gossip"], 2),
        ("endpoint-bogus", ["--endpoint", "carrier-pigeon://x", "--timeout", "1"], 2),
        ("endpoint-empty", ["--endpoint", "", "--timeout", "1"], 2),
        ("server-key-missing", ["--curve-server-key", str(c.missing), "--timeout", "1"], 2),
        ("server-key-garbage", ["--curve-server-key", str(c.random), "--timeout", "1"], 2),
        ("server-key-fifo", ["--curve-server-key", str(c.fifo), "--timeout", "1"], 2),
        ("client-key-dir", ["--curve-client-key", str(c.directory), "--timeout", "1"], 2),
        ("nobody-there", ["--endpoint", quiet, "--timeout", "1"], 1),
        ("nobody-there-json", ["--endpoint", quiet, "--timeout", "1", "--json"], 1),
    ):
        add(Case(f"listen/{name}", [*listen, *flags], code, timeout=120))

    # slr-predict: damaged models (before any video is read), damaged videos, bad flags.
    predict = [_cmd("slr-predict")]
    for name, model in c.bad_models.items():
        add(Case(f"predict/model-{name}", [*predict, sample, "--model", str(model)], 2))
    for name, video in c.bad_videos.items():
        add(Case(f"predict/video-{name}", [*predict, str(video), "--model", good], 2))
    add(Case("predict/video-dash", [*predict, "--model", good, "--", str(c.dash)], 2))
    for name, flags in {
        "top-k-0": [sample, "--top-k", "0"],
        "threads-0": [sample, "--threads", "0"],
        "seconds-inf": ["--camera", "/dev/video99", "--seconds", "inf"],
        "seconds-nan": ["--camera", "/dev/video99", "--seconds", "nan"],
        "seconds-0": ["--camera", "/dev/video99", "--seconds", "0"],
        "countdown-negative": ["--camera", "/dev/video99", "--countdown", "-5"],
        "both": [sample, "--camera"],
        "neither": [],
        "camera-absent": ["--camera", "/dev/video99", "--countdown", "0"],
        "camera-not-a-device": ["--camera", str(c.fifo), "--countdown", "0"],
        "camera-url-secret": ["--camera", CAMERA_URL, "--countdown", "0", "--seconds", "1"],
        "top-k-text": [sample, "--top-k", "lots"],
    }.items():
        add(Case(f"predict/{name}", [*predict, *flags, "--model", good], 2))
    add(Case("predict/no-model", [*predict, sample], 2))

    # slr-extract: a bad video is reported (exit 1) and never saved as finished.
    extract = [_cmd("slr-extract"), "--workers", "1", "--no-progress"]
    for name in ("empty", "text", "fifo", "directory", "sparse", "dangling", "header-only"):
        out = c.out / f"extract-{name}"
        video = c.bad_videos[name]
        add(
            Case(
                f"extract/video-{name}",
                [*extract, str(video), "-o", str(out)],
                1,
                absent=[out / f"{video.stem}.npz"],
                check=_nothing_named(out, "*.npz"),
                cost=3,
            )
        )
    out = c.out / "extract-truncated"
    add(
        Case(
            "extract/truncated-mkv",
            [*extract, str(c.trunc_mkv), "-o", str(out)],
            1,
            absent=[out / "trunc.npz"],
            stderr_has="incomplete",
            timeout=300,
            cost=9,
        )
    )
    for name, flags in {
        "workers-0": [sample, "--workers", "0"],
        "shard-bad": [sample, "--shard", "5/2"],
        "shard-text": [sample, "--shard", "half"],
        "nothing": [],
        "annotations-missing": ["--annotations", str(c.missing)],
        "annotations-garbage": ["--annotations", str(c.garbage_csv)],
        "annotations-dir": ["--annotations", str(c.directory)],
        "videos-alone": ["--videos", str(c.directory)],
        "duplicate-ids": [sample, str(c.sample.parent / "slovo_sample.mp4")],
        "complexity-3": [sample, "--model-complexity", "3"],
        "both-modes": [sample, "--annotations", str(c.garbage_csv)],
    }.items():
        add(Case(f"extract/{name}", [*extract[:1], *flags, "-o", str(c.out / f"x-{name}")], 2))
    add(Case("extract/output-is-file", [*extract, sample, "-o", str(c.a_file)], 2))
    add(Case("extract/output-dev-null", [*extract, sample, "-o", "/dev/null"], 2))

    # slr-eval: damaged models and checkpoints, bad data, bad flags: exit 2, no metrics written.
    evaluate = [_cmd("slr-eval")]
    for name in (
        "truncated",
        "foreign",
        "random",
        "nan",
        "empty",
        "fps_absurd",
        "text",
        "checkpoint",
        "fifo",
    ):
        out = c.out / f"eval-{name}"
        add(
            Case(
                f"eval/model-{name}",
                [*evaluate, str(c.bad_models[name]), "--data", str(c.junk_data), "--out", str(out)],
                2,
                absent=[out / "metrics.json"],
                cost=2,
            )
        )
    for name in ("empty", "random", "truncated", "list", "all_scalar", "one_scalar", "nan", "wrong_shapes"):
        add(
            Case(
                f"eval/checkpoint-{name}",
                [*evaluate, str(c.bad_checkpoints[name]), "--data", str(c.junk_data)],
                2,
                cost=2,
            )
        )
    for name, flags in {
        "batch-0": [good, "--data", str(c.junk_data), "--batch-size", "0"],
        "data-missing": [good, "--data", str(c.missing)],
        "data-empty": [good, "--data", str(c.empty_dir)],
        "data-junk": [good, "--data", str(c.junk_data)],
        "data-garbage-list": [good, "--data", str(c.garbage_csv)],
        "out-is-file": [good, "--data", str(c.junk_data), "--out", str(c.a_file)],
        "out-dev-null": [good, "--data", str(c.junk_data), "--out", "/dev/null"],
        "val-fraction-2": [good, "--data", str(c.junk_data), "--val-fraction", "2"],
        "top-confusions-negative": [good, "--data", str(c.junk_data), "--top-confusions", "-1"],
        "no-data": [good],
    }.items():
        add(Case(f"eval/{name}", [*evaluate, *flags], 2, cost=2))

    # slr-train: bad data, configs and flags: exit 2 before any epoch, no checkpoint written.
    train = [_cmd("slr-train")]
    for name, flags in {
        "no-data": [],
        "data-missing": ["--data", str(c.missing)],
        "data-empty": ["--data", str(c.empty_dir)],
        "data-junk": ["--data", str(c.junk_data)],
        "data-garbage-list": ["--data", str(c.garbage_csv)],
        "config-not-toml": ["--data", str(c.junk_data), "--config", str(c.configs["not_toml"])],
        "config-unknown": ["--data", str(c.junk_data), "--config", str(c.configs["unknown_key"])],
        "config-missing": ["--data", str(c.junk_data), "--config", str(c.missing)],
        "resume-missing": ["--data", str(c.junk_data), "--resume", str(c.missing)],
        "resume-garbage": ["--data", str(c.junk_data), "--resume", str(c.bad_checkpoints["random"])],
        "epochs-0": ["--data", str(c.junk_data), "--epochs", "0"],
        "lr-nan": ["--data", str(c.junk_data), "--lr", "nan"],
        "batch-0": ["--data", str(c.junk_data), "--batch-size", "0"],
        "val-fraction-2": ["--data", str(c.junk_data), "--val-fraction", "2"],
    }.items():
        out = c.out / f"train-{name}"
        add(
            Case(
                f"train/{name}",
                [*train, *flags, "--out", str(out), "--no-progress"],
                2,
                absent=[out / "best.pt", out / "last.pt"],
                cost=2,
            )
        )

    # slr-export: damaged checkpoints, bad options, and outputs it must never replace.
    export = [_cmd("slr-export"), "--no-latency"]
    for name, ckpt in c.bad_checkpoints.items():
        out = c.out / f"export-ckpt-{name}.onnx"
        add(
            Case(
                f"export/checkpoint-{name}",
                [*export, str(ckpt), "-o", str(out), "--format", "published" if "scalar" in name else "auto"],
                2,
                absent=[out],
                check=_nothing_named(c.out, f".export-ckpt-{name}.onnx.*"),
                cost=2,
            )
        )
    for name, flags in {
        "opset-99": ["--opset", "99"],
        "opset-0": ["--opset", "0"],
        "fps-inf": ["--fps", "inf"],
        "fps-nan": ["--fps", "nan"],
        "fps-0": ["--fps", "0"],
        "fps-huge": ["--fps", "1e9"],
        "threads-0": ["--threads", "0"],
        "num-classes-0": ["--num-classes", "0"],
        "labels-missing": ["--labels", str(c.missing)],
        "labels-empty": ["--labels", str(c.labels_empty)],
        "labels-binary": ["--labels", str(c.random)],
        "labels-fifo": ["--labels", str(c.fifo)],
        "preset-bogus": ["--random-init", "gigantic"],
        "format-bogus": ["--format", "pickle"],
    }.items():
        out = c.out / f"export-{name}.onnx"
        args = [*export, "-o", str(out), *flags]
        if "--random-init" not in flags:
            args += ["--random-init", "edge"]
        add(Case(f"export/{name}", args, 2, absent=[out], cost=2))
    add(Case("export/nothing", [*export, "-o", str(c.out / "n.onnx")], 2, absent=[c.out / "n.onnx"], cost=2))
    add(
        Case(
            "export/both-sources",
            [*export, str(c.checkpoint), "--random-init", "edge", "-o", str(c.out / "b.onnx")],
            2,
            absent=[c.out / "b.onnx"],
            cost=2,
        )
    )
    add(Case("export/no-output", [*export, "--random-init", "edge"], 2, cost=2))
    # Targets that must never be replaced: a device, a FIFO, a symlink (and its target), a directory.
    victims = c.root / "victims"
    victims.mkdir()
    target = victims / "precious.txt"
    target.write_text("keep me")
    link = victims / "link.onnx"
    os.symlink(target, link)
    fifo = victims / "fifo.onnx"
    os.mkfifo(fifo)

    def untouched() -> None:
        assert link.is_symlink() and target.read_text() == "keep me"
        assert Path(fifo).exists() and not Path(fifo).is_file()
        assert Path("/dev/null").is_char_device()
        assert not list(victims.glob(".*")), "temporary export files left behind"

    for name, dest in {
        "dev-null": Path("/dev/null"),
        "fifo": fifo,
        "symlink": link,
        "directory": c.directory,
        "no-parent": c.missing.parent / "nope" / "m.onnx",
        "parent-is-file": c.a_file / "m.onnx",
    }.items():
        add(
            Case(
                f"export/output-{name}",
                [*export, "--random-init", "edge", "-o", str(dest)],
                2,
                check=untouched,
                stderr_has="error",
                cost=2,
            )
        )

    # slr-model (issue 25): every damaged model, checkpoint and special file given as a local source
    # is one line and exit 2, and nothing reaches --to (the servers' corpus is test_model_hostile.py).
    model_cmd = _cmd("slr-model")
    to = ["--to", str(c.out / "slr-model")]
    empty_to = _nothing_named(c.out / "slr-model", "*")
    for name, model in c.bad_models.items():
        add(Case(f"model-verify/{name}", [model_cmd, "verify", str(model)], 2, stderr_has="error"))
    for name in ("nan", "fps_absurd", "labels_bad", "truncated"):  # a sample: the checks are verify's
        argv = [model_cmd, "fetch", str(c.bad_models[name]), *to]
        add(Case(f"model-fetch/onnx-{name}", argv, 2, stderr_has="error", check=empty_to))
    add(Case("model-verify/ok", [model_cmd, "verify", good], 0))
    for name, checkpoint in c.bad_checkpoints.items():
        argv = [model_cmd, "fetch", str(checkpoint), "--labels", str(c.labels_empty), *to]
        add(Case(f"model-fetch/checkpoint-{name}", argv, 2, stderr_has="error", check=empty_to, cost=2))
    sources = {
        "sparse": c.sparse,
        "fifo": c.fifo,
        "directory": c.directory,
        "dev-null": Path("/dev/null"),
        "symlink-loop": c.loop,
        "dangling": c.dangling,
    }
    for name, path in sources.items():
        argv = [model_cmd, "fetch", str(path), *to]
        add(Case(f"model-fetch/source-{name}", argv, 2, stderr_has="error", check=empty_to, timeout=60))
    for name, args in {
        "wrong-sha256": ["fetch", good, "--sha256", "0" * 64, *to],
        "bad-sha256": ["fetch", good, "--sha256", "nope", *to],
        "labels-for-onnx": ["fetch", good, "--labels", str(c.labels_empty), *to],
        "int8-for-onnx": ["fetch", good, "--int8", *to],
        "ftp": ["fetch", "ftp://127.0.0.1/m.onnx", *to],
        "fetch-no-source": ["fetch"],
        "bogus-command": ["frobnicate"],
        "no-command": [],
    }.items():
        add(Case(f"model-args/{name}", [model_cmd, *args], 2, check=empty_to))
    return sorted(cases, key=lambda case: case.cost)


# -- running ----------------------------------------------------------------------------------------


def _run(case: Case, env: dict[str, str], cwd: Path) -> Outcome:
    started = time.monotonic()
    try:
        done = subprocess.run(
            case.argv,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=case.timeout,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:

        def text(value: object) -> str:
            return value.decode(errors="replace") if isinstance(value, bytes) else str(value or "")

        return Outcome(None, text(exc.stdout), text(exc.stderr), time.monotonic() - started)
    return Outcome(done.returncode, done.stdout, done.stderr, time.monotonic() - started)


def _batchable(case: Case) -> bool:
    """Cases that fail at start-up in one process, without signals or special files of their own."""
    from tests.helpers_batch import TARGETS

    argv = case.argv
    special = any("fifo" in arg or arg.startswith("/dev/") or "rtsp://" in arg for arg in argv)
    return Path(argv[0]).name in TARGETS and argv[1:2] != ["run"] and not special


def run_cases(cases: list[Case], env: dict[str, str], cwd: Path) -> list[tuple[Case, Outcome]]:
    """Batchable cases in one interpreter (:mod:`tests.helpers_batch`), the rest as their own
    processes, in parallel; results in the order of ``cases``."""
    batch = [case for case in cases if _batchable(case)]
    alone = [case for case in cases if not _batchable(case)]
    with ThreadPoolExecutor(max(2, min(6, 2 * (os.cpu_count() or 1)))) as pool:
        batched = pool.submit(_run_batch, batch, env, cwd)
        futures = {case.name: pool.submit(_run, case, env, cwd) for case in alone}
        outcomes = {case.name: future.result() for case, future in zip(alone, futures.values(), strict=True)}
        outcomes.update(batched.result())
    return [(case, outcomes[case.name]) for case in cases]


def _run_batch(cases: list[Case], env: dict[str, str], cwd: Path) -> dict[str, Outcome]:
    if not cases:
        return {}
    request = json.dumps([{"argv": case.argv, "timeout": case.timeout} for case in cases])
    done = subprocess.run(
        [sys.executable, "-m", "tests.helpers_batch"],
        input=request,
        capture_output=True,
        text=True,
        timeout=sum(case.timeout for case in cases) + 120,
        env={**env, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
        cwd=cwd,
    )
    assert done.returncode == 0, f"the batch runner failed:\n{done.stderr[-3000:]}"
    answers = json.loads(done.stdout)
    return {
        case.name: Outcome(answer["code"], answer["out"], answer["err"], answer["seconds"])
        for case, answer in zip(cases, answers, strict=True)
    }


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, shared_dir: Path) -> Corpus:
    if shutil.which("ffmpeg") is None:
        pytest.fail("ffmpeg is needed to build the hostile corpus (apt-get install ffmpeg)")
    return Corpus(tmp_path_factory.mktemp("hostile"), shared_dir)


def _problems(case: Case, outcome: Outcome) -> list[str]:
    """What is wrong with one finished case (empty: it behaved)."""
    output = outcome.out + outcome.err
    if outcome.code is None:
        return [f"hang: still running after {case.timeout:g} s"]
    problems = [f"crash: {marker}" for marker in CRASH_MARKERS if marker in output]
    if outcome.code != case.code:
        problems.append(f"wrong exit code: {outcome.code}, documented {case.code}")
    if SECRET in output:
        problems.append("printed the camera password")
    if case.code != 0 and not outcome.err.strip():
        problems.append("failed without a word on stderr")
    if case.stderr_has and case.stderr_has not in outcome.err:
        problems.append(f"stderr lacks {case.stderr_has!r}")
    problems += [f"left {path} behind as if complete" for path in case.absent if path.exists()]
    if case.check is not None:
        try:
            case.check()
        except AssertionError as exc:
            problems.append(f"check failed: {exc}")
    return problems


def test_hostile_corpus(corpus: Corpus) -> None:
    """Every case of :func:`build_cases`, run in parallel; one report listing every misbehaving case."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONFAULTHANDLER"}
    env.update(COLUMNS="100", PYTHONUNBUFFERED="1", SLOVO_MODEL_CACHE=str(corpus.root / "model-cache"))
    cases = build_cases(corpus)
    commands = {case.name.split("/")[0] for case in cases}
    assert len(cases) >= 150, len(cases)
    assert len({case.name for case in cases}) == len(cases), "case names must be unique"
    assert {"check-model", "run", "listen", "predict", "extract", "eval", "train", "export"} <= commands
    started = time.monotonic()
    results = run_cases(cases, env, corpus.root)
    report = []
    for case, outcome in results:
        problems = _problems(case, outcome)
        if problems:
            shown = f"{Path(case.argv[0]).name} {' '.join(case.argv[1:])}"
            tail = (outcome.err or outcome.out).strip().splitlines()[-3:]
            report.append(f"{case.name}: {'; '.join(problems)}\n    $ {shown}\n    " + "\n    ".join(tail))
    slowest = max(results, key=lambda item: item[1].seconds)
    print(
        f"hostile corpus: {len(cases)} cases over {len(commands)} commands "
        f"in {time.monotonic() - started:.0f} s, "
        f"{len(report)} misbehaved; slowest {slowest[0].name} {slowest[1].seconds:.1f} s"
    )
    assert not report, f"{len(report)} of {len(cases)} hostile cases misbehaved:\n" + "\n".join(report)


def test_reliability_doc_has_the_figures() -> None:
    doc = (Path(__file__).resolve().parents[1] / "docs" / "RELIABILITY.md").read_text(encoding="utf-8")
    assert "## Hostile input" in doc
    assert "cases" in doc and "tracebacks" in doc and "hangs" in doc

"""``slr-model fetch``: a source (registry name, URL or path) → a verified ``.onnx``, once.

The steps, each of which stops before anything reaches the target directory:

1. resolve the source: a registry name gives a model file and its labels; an ``http(s)://`` URL
   or a local file stands alone (``--labels`` adds class names for a checkpoint);
2. get the bytes: from the cache when their checksum is known (``--sha256``, the registry, or
   the first download's record), else downloaded into ``partial/`` under a lock, checked
   (``--sha256``, trust on first use, not an HTML page) and renamed into ``blobs/<sha256>/``;
3. a prebuilt ``.onnx`` is checked by the daemon's loader (no torch); a checkpoint is exported
   by ``export.exporter`` (the ``slr-export`` path: ``torch.load(weights_only=True)``, parity
   ≤ 1e-4, or no file), once per checkpoint + labels + ``--int8``, into ``models/``;
4. with ``--to DIR`` the model is copied there atomically; a registry name is recorded so that
   ``--model NAME`` finds it.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

from edge.models.cache import Cache, source_key
from edge.models.download import DEFAULT_MAX_BYTES, Limits, download, human_size
from edge.models.errors import BadSource, ModelStoreError
from edge.models.registry import Asset, Entry, load_registry
from edge.models.verify import kind_from_name, refuse_html, sniff_kind, verify_onnx
from edge.util.files import file_sha256, output_dir_problem, replaced_on_success
from edge.util.redact import redact

#: Labels files are small; a bigger "labels" answer is not one.
LABELS_MAX_BYTES = 16 << 20
_SHA = frozenset("0123456789abcdef")

Say = Callable[[str], None]


@dataclass(frozen=True)
class Fetched:
    """What ``slr-model fetch`` installed (``--json`` prints this)."""

    path: str
    sha256: str
    source_sha256: str
    name: str
    kind: str
    labels: int
    downloaded: bool
    exported: bool
    untrained: bool

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class Options:
    sha256: str | None = None
    labels: str | None = None
    to: Path | None = None
    int8: bool = False
    accept_new: bool = False
    refresh: bool = False
    progress: bool = False


def check_sha256(value: str) -> str:
    """A ``--sha256`` value, lowercased; :class:`BadSource` unless it is 64 hex digits."""
    lowered = value.strip().lower()
    if len(lowered) != 64 or not set(lowered) <= _SHA:
        raise BadSource(f"--sha256 must be 64 hexadecimal digits, got {value[:80]!r}")
    return lowered


def is_url(text: str) -> bool:
    return urlsplit(text).scheme.lower() in ("http", "https")


class Fetcher:
    """One fetch; ``say`` gets the progress lines meant for a person (stderr)."""

    def __init__(self, cache: Cache, options: Options, say: Say) -> None:
        self.cache, self.options, self.say = cache, options, say
        self.downloaded = False

    # -- step 2: bytes ---------------------------------------------------------------------------
    def obtain(self, asset: Asset, source_id: str, *, want: str | None, max_bytes: int) -> tuple[Path, str]:
        """The cached file of ``asset`` and its sha256, downloading it if needed."""
        known = want or asset.sha256
        record = self.cache.recorded(source_id)
        if not self.options.refresh:
            for sha in (known, None if known else (record or {}).get("sha256")):
                if sha and (blob := self.cache.blob(sha, check=True)) is not None:
                    return blob, sha
        key = source_key(source_id)
        url = asset.location()
        shown = redact(url)
        with self.cache.locked(key, waiting=f"slr-model: another fetch is downloading {shown}; waiting"):
            record = self.cache.recorded(source_id)
            if not self.options.refresh:  # the fetch we waited for may have brought it
                for sha in (known, None if known else (record or {}).get("sha256")):
                    if sha and (blob := self.cache.blob(sha, check=True)) is not None:
                        return blob, sha
            part = self.cache.partial(key)
            self.say(f"slr-model: downloading {shown}")
            download(
                url,
                part,
                expected_size=asset.size,
                limits=Limits.from_env(max_bytes),
                progress=self.options.progress,
                label=asset.file,
                on_retry=lambda why: self.say(f"slr-model: {why}"),
            )
            self.downloaded = True
            try:
                sha = file_sha256(part)
                refuse_html(part, shown)
                if known and sha != known:
                    raise BadSource(f"{shown}: checksum mismatch: expected sha256 {known}, got {sha}")
                if not known and record and record["sha256"] != sha and not self.options.accept_new:
                    raise BadSource(
                        f"{shown} changed since its first download ({record.get('first_seen', '?')}): "
                        f"sha256 {record['sha256']} then, {sha} now; refused "
                        "(--accept-new trusts the new file)"
                    )
            except BaseException:
                part.unlink(missing_ok=True)
                raise
            size = part.stat().st_size
            blob = self.cache.store(part, sha, asset.file)
            if not known or not record or record["sha256"] != sha:
                self.cache.record(source_id, sha, size)
            return blob, sha

    def local(self, text: str) -> tuple[Path, str]:
        path = Path(text)
        if not path.is_file():  # FIFOs, devices and directories too: never opened
            raise BadSource(
                f"{text} is not a registry name ({', '.join(sorted(load_registry()))}), "
                "an http(s):// URL or an existing file"
            )
        _check_local_size(path, DEFAULT_MAX_BYTES)
        sha = file_sha256(path)
        if self.options.sha256 and sha != self.options.sha256:
            raise BadSource(f"{text}: checksum mismatch: expected sha256 {self.options.sha256}, got {sha}")
        return path, sha

    def labels_file(self, text: str) -> tuple[Path, str]:
        if is_url(text):
            asset = Asset(url=text, file=_file_name(text, "labels.json"))
            return self.obtain(asset, redact(text), want=None, max_bytes=LABELS_MAX_BYTES)
        path = Path(text)
        if not path.is_file():
            raise BadSource(f"labels file {text} is not an existing file or an http(s):// URL")
        _check_local_size(path, LABELS_MAX_BYTES)
        return path, file_sha256(path)

    # -- steps 1-4 -------------------------------------------------------------------------------
    def fetch(self, source: str) -> Fetched:
        self.cache.ensure()
        opts = self.options
        if opts.to is not None and (problem := output_dir_problem(opts.to, "--to directory")):
            raise BadSource(problem)
        entry = load_registry().get(source)
        labels: tuple[Path, str] | None = None
        if entry is not None:
            name = entry.name
            model_path, model_sha = self.obtain(
                entry.model, f"{entry.name}:{entry.model.file}", want=opts.sha256, max_bytes=DEFAULT_MAX_BYTES
            )
            kind = entry.model.kind
            labels = self._entry_labels(entry)
        elif is_url(source):
            file_name = _file_name(source, "model")
            asset = Asset(url=source, file=file_name, kind=kind_from_name(file_name) or "")
            name = Path(file_name).stem
            # Keyed by the URL as shown: a token in it never reaches lock.json.
            model_path, model_sha = self.obtain(
                asset, redact(source), want=opts.sha256, max_bytes=DEFAULT_MAX_BYTES
            )
            kind = asset.kind or sniff_kind(model_path)
            if opts.labels:
                labels = self.labels_file(opts.labels)
        else:
            name = Path(source).stem
            model_path, model_sha = self.local(source)
            refuse_html(model_path, source)
            kind = kind_from_name(source) or sniff_kind(model_path)
            if opts.labels:
                labels = self.labels_file(opts.labels)

        exported = False
        if kind == "onnx":
            if opts.labels:
                raise BadSource("--labels is for checkpoints: an .onnx carries its labels in its metadata")
            if opts.int8:
                raise BadSource("--int8 is for checkpoints (exported quantised): this source is an .onnx")
            model = model_path
        else:
            model, exported = self._exported(model_path, model_sha, labels)
            name = f"{name}-int8" if opts.int8 else name
        summary = verify_onnx(model)
        final = self._install(model, name, summary.sha256) if opts.to is not None else model
        if entry is not None:
            self.cache.set_installed(name, model, summary.sha256)
        return Fetched(
            path=str(final),
            sha256=summary.sha256,
            source_sha256=model_sha,
            name=name,
            kind=kind,
            labels=summary.labels,
            downloaded=self.downloaded,
            exported=exported,
            untrained=summary.untrained,
        )

    def _entry_labels(self, entry: Entry) -> tuple[Path, str] | None:
        if self.options.labels:
            return self.labels_file(self.options.labels)
        if entry.labels is None:
            return None
        return self.obtain(
            entry.labels, f"{entry.name}:{entry.labels.file}", want=None, max_bytes=LABELS_MAX_BYTES
        )

    def _exported(self, checkpoint: Path, sha: str, labels: tuple[Path, str] | None) -> tuple[Path, bool]:
        """The ``.onnx`` exported from ``checkpoint`` (+ labels, --int8): cached, or exported now."""
        labels_sha = labels[1] if labels else "none"
        key = hashlib.sha256(f"{sha}:{labels_sha}:{self.options.int8}".encode()).hexdigest()[:32]
        out = self.cache.model(key)
        with self.cache.locked(
            f"export-{key}", waiting="slr-model: another fetch is exporting this model; waiting"
        ):
            if out.is_file() and not self.options.refresh:
                try:
                    verify_onnx(out)
                    return out, False
                except BadSource:
                    out.unlink(missing_ok=True)
            self.say("slr-model: exporting the checkpoint to ONNX (verified against PyTorch)")
            export_checkpoint_to(checkpoint, labels[0] if labels else None, out, int8=self.options.int8)
        return out, True

    def _install(self, model: Path, name: str, sha: str) -> Path:
        assert self.options.to is not None
        target = self.options.to / f"{name}.onnx"
        if target.is_symlink() or (target.exists() and not target.is_file()):
            raise BadSource(f"{target} exists and is not a regular file; refusing to replace it")
        if target.is_file():
            if file_sha256(target) == sha:
                return target
            raise BadSource(f"{target} exists and holds another model; remove it or choose another --to")
        with replaced_on_success(target) as tmp:
            shutil.copyfile(model, tmp)
        return target


def export_checkpoint_to(checkpoint: Path, labels: Path | None, output: Path, *, int8: bool) -> None:
    """Export with ``slr-export``'s verified path; torch is imported only here."""
    try:
        # By name, like commands/scaffold.py's torch commands: export/ sits above edge/ (it imports
        # edge), and is needed only here, on a machine with the train extra.
        exporter = importlib.import_module("export.exporter")
        sources = importlib.import_module("export.sources")
    except ModuleNotFoundError as exc:
        top = (exc.name or "").split(".")[0]
        if top in ("edge", "export", "model_src"):
            raise
        raise BadSource(
            f"{checkpoint.name} is a checkpoint: exporting it needs the 'train' extra (module {top!r} is "
            "not installed): pip install 'slovo-edge[train]', or fetch a prebuilt .onnx with --sha256"
        ) from None
    try:
        exporter.export_checkpoint(checkpoint, output, labels=labels, int8=int8, latency_runs=0)
    except exporter.ParityError as exc:
        raise ModelStoreError(f"the exported model failed verification: {exc}") from None
    except sources.ExportError as exc:
        raise BadSource(str(exc)) from None


def _check_local_size(path: Path, limit: int) -> None:
    """A local file larger than a download may be is refused before it is read (a 20 GB sparse file)."""
    size = path.stat().st_size
    if size > limit:
        raise BadSource(f"{path} is {human_size(size)}, more than the limit of {human_size(limit)}")


def _file_name(url: str, default: str) -> str:
    """The last path segment of ``url`` as a safe file name (``default`` if it has none)."""
    name = os.path.basename(urlsplit(url).path)
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in name).lstrip(".")
    return safe[:100] or default


def fetch(source: str, options: Options, *, cache: Cache | None = None, say: Say | None = None) -> Fetched:
    """Fetch ``source`` (module docstring); raises :class:`~edge.models.errors.ModelStoreError`."""
    if options.sha256:
        options = replace(options, sha256=check_sha256(options.sha256))
    return Fetcher(cache or Cache(), options, say or (lambda line: print(line, file=sys.stderr))).fetch(
        source
    )

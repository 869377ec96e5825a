"""``slr-model``: fetch the published weights once, verified, exported and ready for ``--model NAME``.

The command is the thin shell around :mod:`edge.models` (registry, cache, download, checks):
argument parsing, the one-line errors with their exit codes, and what is printed (the model's
path on stdout, for scripts; progress and notes on stderr).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from edge.commands.scaffold import EXIT_OK, add_version, run
from edge.util.signals import interrupt_on_signals

EPILOG = """\
sources:
  a registry name (slr-model list), an http(s):// URL or a local file, of a published-format
  checkpoint (.pt/.pth: exported with slr-export's verified path, which needs the 'train'
  extra) or a prebuilt .onnx (checked and installed without PyTorch).

examples:
  slr-model fetch slovo-500                          # the published 500-sign model; prints its path
  slr-edge run --model slovo-500                     # ...then use it by name (slr-web, slr-predict too)
  slr-model fetch https://example.org/slovo.onnx --sha256 HEX --to /opt/models
  slr-model fetch weights.pth --labels sign_language_model_mappings.json --int8
  slr-model list                                     # names, what is cached, sizes, checksums
  slr-model verify model.onnx                        # the daemon's checks, no PyTorch

Downloads go to a cache keyed by checksum (SLOVO_MODEL_CACHE; $STATE_DIRECTORY/models under
systemd; else ~/.cache/slovo-edge/models), so a second fetch downloads nothing. A file without a
published checksum is trusted on first use: its sha256 is recorded in the cache's lock.json and
a later download with other bytes is refused unless --accept-new. An interrupted download
resumes on the next run. SLOVO_MODEL_MIRROR=URL fetches registry files from URL/<file name>;
proxies come from the environment (HTTPS_PROXY, NO_PROXY); SLOVO_MODEL_TIMEOUT (seconds, default
30) bounds a stalled transfer.

exit codes: 0 installed (or verified), 1 the download or the export's verification failed
            (network, timeout, server misbehaviour, full disk: run again, a partial download
            resumes), 2 bad input: option, source, checksum mismatch, changed bytes, an HTML page
            or a file that is not a model, a checkpoint without the 'train' extra (one line,
            nothing written to --to), 130 interrupted (Ctrl-C or SIGTERM)
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (separate so docs and tests can inspect it)."""
    parser = argparse.ArgumentParser(
        prog="slr-model",
        description="Fetch, verify and list published sign recognition models.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_version(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    fetch = sub.add_parser("fetch", help="download (once), verify, export and install a model")
    fetch.add_argument("source", metavar="SOURCE", help="registry name, http(s):// URL or local file")
    fetch.add_argument("--sha256", metavar="HEX", help="expected sha256 of the downloaded file")
    fetch.add_argument(
        "--labels",
        metavar="SOURCE",
        help="class names for a checkpoint (URL or file: the seed's mapping JSON, labels JSON, text, "
        "annotations.csv); a registry name brings its own",
    )
    fetch.add_argument("--to", type=Path, metavar="DIR", help="also copy the model into DIR")
    fetch.add_argument(
        "--int8", action="store_true", help="export a checkpoint int8-quantised (faster on ARM)"
    )
    fetch.add_argument(
        "--accept-new", action="store_true", help="trust a file whose bytes changed since its first download"
    )
    fetch.add_argument("--refresh", action="store_true", help="download again even if cached (and re-check)")
    fetch.add_argument("--json", action="store_true", help="print the result as JSON")
    fetch.add_argument("--quiet", action="store_true", help="no progress bar or notes")

    listing = sub.add_parser("list", help="registry names, what is cached, sizes, checksums")
    listing.add_argument("--json", action="store_true", help="print JSON")

    verify = sub.add_parser("verify", help="check an .onnx as the daemon would (no PyTorch)")
    verify.add_argument("file", type=Path, metavar="FILE")
    verify.add_argument("--sha256", metavar="HEX", help="also require this sha256")
    verify.add_argument("--json", action="store_true", help="print JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``slr-model``."""
    return run("slr-model", _main, argv)


def _main(argv: list[str] | None) -> int:
    from edge.models.errors import EXIT_USAGE, ModelStoreError

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        print("slr-model: error: give a command (fetch, list or verify)", file=sys.stderr)
        return EXIT_USAGE
    try:
        with interrupt_on_signals():  # SIGTERM too: temporary files go on the way out
            return int(getattr(sys.modules[__name__], f"_cmd_{args.command}")(args))
    except ModelStoreError as exc:
        print(f"slr-model: error: {exc}".splitlines()[0], file=sys.stderr)
        return exc.exit_code


def _cmd_fetch(args: argparse.Namespace) -> int:
    from edge.models.fetch import Options, fetch

    def say(line: str) -> None:
        if not args.quiet:
            print(line, file=sys.stderr)

    result = fetch(
        args.source,
        Options(
            sha256=args.sha256,
            labels=args.labels,
            to=args.to,
            int8=args.int8,
            accept_new=args.accept_new,
            refresh=args.refresh,
            progress=not args.quiet and sys.stderr.isatty(),
        ),
        say=say,
    )
    if args.json:
        print(json.dumps(result.as_dict(), ensure_ascii=False))
    else:
        if result.untrained:
            say("slr-model: warning: this model is UNTRAINED (random weights): its predictions mean nothing")
        say(f"slr-model: {result.labels} classes, sha256 {result.sha256}")
        print(result.path)
    return EXIT_OK


def _cmd_list(args: argparse.Namespace) -> int:
    from edge.models.cache import Cache
    from edge.models.registry import load_registry
    from edge.util.terminal import for_terminal

    cache = Cache()
    tofu = cache.tofu()
    rows = []
    for name, entry in sorted(load_registry().items()):
        record = tofu.get(f"{name}:{entry.model.file}") or {}
        sha = entry.model.sha256 or record.get("sha256")
        model = cache.installed(name)
        rows.append(
            {
                "name": name,
                "description": entry.description,
                "url": entry.model.url,
                "file": entry.model.file,
                "sha256": sha,
                "sha256_from": "registry" if entry.model.sha256 else ("first download" if sha else None),
                "size": entry.model.size or record.get("size"),
                "cached": bool(sha and cache.blob(sha)),
                "model": str(model) if model else None,
                "model_size": model.stat().st_size if model else None,
            }
        )
    registry_ids = {f"{name}:{entry.model.file}" for name, entry in load_registry().items()}
    registry_ids |= {f"{n}:{e.labels.file}" for n, e in load_registry().items() if e.labels is not None}
    others = [
        {"source": source, "sha256": record.get("sha256"), "size": record.get("size"),
         "cached": bool(cache.blob(str(record.get("sha256"))))}
        for source, record in sorted(tofu.items())
        if source not in registry_ids and isinstance(record, dict)
    ]  # fmt: skip
    if args.json:
        print(json.dumps({"cache": str(cache.root), "models": rows, "other": others}, ensure_ascii=False))
        return EXIT_OK
    print(f"cache: {cache.root}")
    for row in rows:
        state = f"installed: {row['model']} ({row['model_size']} bytes)" if row["model"] else "not fetched"
        print(f"{row['name']}: {row['description']}")
        print(
            f"  {row['file']}  size {row['size'] or 'unknown'}  sha256 {row['sha256'] or 'unknown'}"
            + (f" ({row['sha256_from']})" if row["sha256_from"] else "")
        )
        print(f"  {state}")
    for other in others:
        cached = "cached" if other["cached"] else "no longer cached"
        source = for_terminal(str(other["source"]))  # lock.json is a file anyone with access may edit
        print(f"{source}: {other['size']} bytes, sha256 {other['sha256']} ({cached})")
    return EXIT_OK


def _cmd_verify(args: argparse.Namespace) -> int:
    from edge.models.errors import BadSource
    from edge.models.fetch import check_sha256
    from edge.models.verify import verify_onnx

    want = check_sha256(args.sha256) if args.sha256 else None
    summary = verify_onnx(args.file)
    if want and summary.sha256 != want:
        raise BadSource(f"{args.file}: checksum mismatch: expected sha256 {want}, got {summary.sha256}")
    if args.json:
        print(json.dumps(summary.__dict__, ensure_ascii=False))
    else:
        from edge.util.terminal import for_terminal  # labels are the file's text: never escape codes

        first = for_terminal(", ".join(summary.first_labels))
        print(
            f"{for_terminal(str(args.file))}: OK: {summary.labels} classes ({first}, ...), "
            f"window {summary.window}, {summary.fps:g} fps, sha256 {summary.sha256}, "
            f"from checkpoint {summary.source_sha256}" + (" [UNTRAINED]" if summary.untrained else "")
        )
    return EXIT_OK

"""slr-web's options, declared once (edge/web/options.py, issue 26): the same flags, defaults and
one-line error messages as the hand-written checks they replaced, and one home for each default."""

from __future__ import annotations

import pytest

from edge.captions.cues import DEFAULT_MIN_CONFIDENCE
from edge.commands.web import build_parser
from edge.transport.publisher import DEFAULT_ENDPOINT
from edge.util.settings import ConfigError
from edge.web.app import WebSettings
from edge.web.options import from_args

SIZES = (
    "--max-upload-mb (up to 4096), --upload-timeout (up to 86400 s), --upload-min-rate and "
    "--port (below 65536) must be positive numbers"
)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--port", "0"], SIZES),
        (["--port", "65536"], SIZES),
        (["--max-upload-mb", "nan"], SIZES),
        (["--max-upload-mb", "0"], SIZES),
        (["--max-upload-mb", "4096.5"], SIZES),
        (["--upload-timeout", "inf"], SIZES),
        (["--upload-timeout", "-1"], SIZES),
        (["--upload-min-rate", "0"], SIZES),
        (["--upload-min-rate", "1e7"], SIZES),
        (["--min-confidence", "1.5"], "--min-confidence must be between 0 and 1"),
        (["--min-confidence", "-0.1"], "--min-confidence must be between 0 and 1"),
        (["--min-confidence", "nan"], "--min-confidence must be between 0 and 1"),
    ],
)
def test_out_of_range_options_keep_their_message(argv: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        from_args(build_parser().parse_args(argv))
    assert str(caught.value) == message


def test_defaults_come_from_their_one_home() -> None:
    options = from_args(build_parser().parse_args([]))
    settings = WebSettings()
    assert options.endpoint == settings.endpoint == DEFAULT_ENDPOINT
    assert options.min_confidence == settings.min_confidence == DEFAULT_MIN_CONFIDENCE == 0.5
    assert int(options.max_upload_mb * 2**20) == settings.max_upload_bytes == 50 * 2**20
    assert options.upload_timeout == settings.upload_timeout_s == 600.0
    assert options.upload_min_rate * 1024 == settings.upload_min_rate == 32 * 1024
    assert (options.host, options.port, options.allow_remote, options.log_level) == (
        "127.0.0.1", 8080, False, "INFO",
    )  # fmt: skip


def test_edge_values_and_spellings_are_accepted() -> None:
    argv = ["--port", "65535", "--max-upload-mb", "4096", "--min-confidence", "0", "--log-level", "debug"]
    options = from_args(build_parser().parse_args(argv))
    assert (options.port, options.max_upload_mb, options.min_confidence) == (65535, 4096.0, 0.0)
    assert options.log_level == "DEBUG"
    assert from_args(build_parser().parse_args(["--min-confidence", "1"])).min_confidence == 1.0


def test_help_keeps_every_flag() -> None:
    text = build_parser().format_help()
    for flag in (
        "--endpoint", "--model", "--host", "--port", "--allow-remote", "--token-file", "--max-upload-mb",
        "--upload-timeout", "--upload-min-rate", "--tls-cert", "--tls-key", "--curve-server-key",
        "--curve-client-key", "--min-confidence", "--state-dir", "--log-level", "--version",
    ):  # fmt: skip
        assert flag in text, flag
    assert "(default 8080)" in text and "(default 50)" in text and "KB_PER_S" in text

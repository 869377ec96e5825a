"""Settings are declared once: the TOML key, SLR_EDGE_* variable, flag and checks all follow from it."""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from edge.daemon.config import ConfigError, DaemonConfig, load_config
from edge.util import settings
from edge.util.settings import setting

REPO = Path(__file__).resolve().parents[1]
NUMERIC = [item for item in settings.declared(DaemonConfig).values() if item.kind in (int, float)]


@dataclass(frozen=True)
class ToyConfig:
    """A config with one new setting, as another engineer would add it: one declaration."""

    gap_s: float = setting(0.5, "seconds without hands that end a segment", gt=0.0, le=10.0, metavar="S")
    mode: str = setting("sign", "what to publish", choices=("sign", "segment"))
    providers: tuple[str, ...] = setting(("CPUExecutionProvider",), "ONNX Runtime execution providers")


def test_one_declaration_gives_every_layer(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    settings.add_arguments(ToyConfig, parser)
    assert "--gap-s" in parser.format_help() and "(default 0.5)" in parser.format_help()
    toml = tmp_path / "toy.toml"
    toml.write_text('gap_s = 2\nproviders = ["A", "B"]\n', encoding="utf-8")
    env = {"TOY_GAP_S": "3.5", "TOY_MODE": "SEGMENT", "OTHER": "x"}
    values = settings.read_toml(ToyConfig, toml)
    values.update(settings.read_env(ToyConfig, env, "TOY_"))
    assert values == {"gap_s": 3.5, "providers": ("A", "B"), "mode": "SEGMENT"}
    flags = settings.flag_values(ToyConfig, parser.parse_args(["--gap-s", "4"]))
    values.update(settings.read_overrides(ToyConfig, flags))
    config = settings.check(ToyConfig(**values))
    assert config == ToyConfig(gap_s=4.0, mode="segment", providers=("A", "B"))
    assert settings.read_env(ToyConfig, {"TOY_PROVIDERS": "X, Y"}, "TOY_") == {"providers": ("X", "Y")}
    for bad, message in [(10.5, r"gap_s must be in \(0, 10\], got 10.5"), (math.inf, "must be a finite")]:
        with pytest.raises(ConfigError, match=message):
            settings.check(ToyConfig(gap_s=bad))
    with pytest.raises(ConfigError, match="mode must be one of sign or segment"):
        settings.check(ToyConfig(mode="words"))


def test_a_field_without_a_declaration_is_refused() -> None:
    @dataclass(frozen=True)
    class Undeclared:
        x: int = 1

    with pytest.raises(TypeError, match="not declared with setting"):
        settings.declared(Undeclared)


def test_every_daemon_setting_has_a_flag_variable_and_key(tmp_path: Path) -> None:
    from edge.commands.edge_cli import build_parser

    help_text = subprocess.run(
        [sys.executable, "-m", "edge.commands.edge_cli", "run", "--help"],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    ).stdout
    for item in settings.declared(DaemonConfig).values():
        assert item.flag in help_text, item.name
        assert settings.read_env(DaemonConfig, {item.env("SLR_EDGE_"): _text(item.default)}, "SLR_EDGE_")
        toml = tmp_path / f"{item.name}.toml"
        if item.default is not None:
            toml.write_text(f"{item.name} = {_toml(item.default)}\n", encoding="utf-8")
            assert settings.read_toml(DaemonConfig, toml) == {item.name: item.default}
    # Flags not given stand aside (None), so the lower layers' values survive.
    assert all(
        v is None for v in settings.flag_values(DaemonConfig, build_parser().parse_args(["run"])).values()
    )


@pytest.mark.parametrize("item", NUMERIC, ids=lambda item: item.name)
def test_numeric_settings_are_bounded_in_every_layer(item: settings.Declared, tmp_path: Path) -> None:
    spec = item.spec
    assert spec.ge is not None or spec.gt is not None or spec.choices is not None, "declare a bound"
    low = spec.ge - 1 if spec.ge is not None else spec.gt if spec.gt is not None else -1
    bad = ["inf", "nan", "-inf", str(low)] if item.kind is float else [str(int(low))]
    for value in bad:
        toml = tmp_path / "bad.toml"
        toml.write_text(f'model = "m"\n{item.name} = {_toml(item.kind(float(value)))}\n', encoding="utf-8")
        layers: list[tuple[Path | None, dict[str, object], dict[str, str]]] = [
            (None, {"model": "m"}, {item.env("SLR_EDGE_"): value}),  # environment
            (None, {"model": "m", item.name: value}, {}),  # flag
            (toml, {}, {}),  # config file
        ]
        for config_file, flags, environ in layers:
            with pytest.raises(ConfigError, match=f"^{item.name} must be") as info:
                load_config(config_file, flags, environ=environ)
            assert "\n" not in str(info.value)


@pytest.mark.parametrize("flag", ["--status-interval", "--idle-after", "--threshold"])
def test_infinite_flag_is_one_line_exit_2(flag: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "edge.commands.edge_cli", "run", "--model", "m.onnx", flag, "inf"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert out.returncode == 2
    assert out.stderr.startswith("slr-edge: error:") and out.stderr.strip().count("\n") == 0
    assert "inf" in out.stderr and "Traceback" not in out.stderr


def _text(value: object) -> str:
    if isinstance(value, tuple):
        return ",".join(value)
    return str(value)


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, tuple):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return str(value)

"""Daemon configuration: layer precedence and one clear error per bad value."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.daemon.config import ConfigError, DaemonConfig, load_config


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "edge.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_need_only_a_model() -> None:
    config = load_config(None, {"model": "m.onnx"}, environ={})
    assert config == DaemonConfig(model="m.onnx")
    assert config.source == "/dev/video0"
    assert config.endpoint == "tcp://127.0.0.1:5556"
    assert (config.stride, config.top_k, config.consecutive, config.threads) == (8, 5, 2, 1)
    assert config.resample is True and config.allow_remote is False


def test_missing_model_is_an_error() -> None:
    with pytest.raises(ConfigError, match="model is required"):
        load_config(None, {}, environ={})


def test_precedence_defaults_toml_env_flags(tmp_path: Path) -> None:
    toml = write(tmp_path, 'model = "a.onnx"\nstride = 2\nthreshold = 0.9\ntop_k = 3\nloop = true\n')
    env = {"SLR_EDGE_STRIDE": "4", "SLR_EDGE_THRESHOLD": "0.8", "PATH": "/bin"}
    flags = {"stride": 6, "threshold": None, "top_k": None, "loop": None}
    config = load_config(toml, flags, environ=env)
    assert config.model == "a.onnx"  # TOML only
    assert config.top_k == 3  # TOML beats default
    assert config.threshold == 0.8  # env beats TOML; flag not given
    assert config.stride == 6  # flag beats env
    assert config.loop is True
    assert config.consecutive == 2  # default


def test_env_values_are_typed() -> None:
    env = {
        "SLR_EDGE_MODEL": "m.onnx",
        "SLR_EDGE_RESAMPLE": "false",
        "SLR_EDGE_IDLE_AFTER_S": "1.5",
        "SLR_EDGE_LOG_LEVEL": "debug",
    }
    config = load_config(None, {}, environ=env)
    assert config.resample is False
    assert config.idle_after_s == 1.5
    assert config.log_level == "DEBUG"


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("stride", 0, "stride must be >= 1"),
        ("threshold", 0.0, r"threshold must be in \(0, 1\]"),
        ("threshold", 1.5, r"threshold must be in \(0, 1\]"),
        ("top_k", 0, "top_k must be >= 1"),
        ("consecutive", 0, "consecutive must be >= 1"),
        ("threads", 0, r"threads must be in \[1, 256\]"),
        ("idle_after_s", -1, "idle_after_s must be > 0"),
        ("status_interval_s", 0, r"status_interval_s must be in \(0, 3600\]"),
        ("log_level", "LOUD", "log_level must be one of"),
        ("endpoint", "udp://127.0.0.1:5556", "endpoint must look like"),
        ("endpoint", "tcp://127.0.0.1", "needs a host and a numeric port"),
        ("endpoint", "tcp://0.0.0.0:5556", "not loopback; pass --allow-remote"),
        ("endpoint", "tcp://*:5556", "not loopback"),
        ("stride", "many", "stride must be int"),
        ("curve_secret_key", "server.key_secret", "must be given together"),
    ],
)
def test_bad_values_give_one_line_errors(key: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        load_config(None, {"model": "m.onnx", key: value}, environ={})
    assert "\n" not in str(info.value)


def test_remote_endpoint_allowed_when_opted_in() -> None:
    config = load_config(
        None, {"model": "m", "endpoint": "tcp://0.0.0.0:5556", "allow_remote": True}, environ={}
    )
    assert config.endpoint == "tcp://0.0.0.0:5556"
    for local in ("tcp://localhost:1", "tcp://127.0.0.2:1", "tcp://[::1]:1", "ipc:///tmp/slr.sock"):
        assert load_config(None, {"model": "m", "endpoint": local}, environ={}).endpoint == local


def test_unknown_toml_key_is_named(tmp_path: Path) -> None:
    toml = write(tmp_path, 'model = "m.onnx"\nstrid = 4\n')
    with pytest.raises(ConfigError, match="unknown key 'strid'"):
        load_config(toml, {}, environ={})


def test_wrong_type_in_toml(tmp_path: Path) -> None:
    toml = write(tmp_path, 'model = "m.onnx"\nthreshold = "high"\n')
    with pytest.raises(ConfigError, match=r"edge\.toml: threshold must be float"):
        load_config(toml, {}, environ={})


def test_malformed_toml_reports_line(tmp_path: Path) -> None:
    toml = write(tmp_path, 'model = "m.onnx"\nstride = 4\nthreshold = = 0.5\n')
    with pytest.raises(ConfigError, match=r"not valid TOML.*line 3") as info:
        load_config(toml, {}, environ={})
    assert "\n" not in str(info.value)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml", {"model": "m"}, environ={})


def test_unknown_env_variable_is_named() -> None:
    with pytest.raises(ConfigError, match="SLR_EDGE_STRDE"):
        load_config(None, {"model": "m"}, environ={"SLR_EDGE_STRDE": "4"})


def test_bad_env_bool() -> None:
    with pytest.raises(ConfigError, match="environment SLR_EDGE_LOOP: loop must be bool"):
        load_config(None, {"model": "m"}, environ={"SLR_EDGE_LOOP": "maybe"})


def test_shipped_example_config_loads_with_defaults() -> None:
    """The TOML shipped beside the systemd unit uses exactly this loader's keys and defaults."""
    example = Path(__file__).resolve().parents[1] / "systemd" / "slovo-edge.toml.example"
    config = load_config(example, {}, environ={})
    assert config == DaemonConfig(model="/var/lib/slovo-edge/model.onnx")


def test_execution_providers_accept_short_names_from_every_layer(tmp_path: Path) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text('model = "m"\nexecution_providers = ["cpu"]\n')
    assert load_config(toml, {}, environ={}).execution_providers == ("CPUExecutionProvider",)
    env = {"SLR_EDGE_EXECUTION_PROVIDERS": "CPUExecutionProvider, Cpu"}
    assert load_config(None, {"model": "m"}, environ=env).execution_providers == ("CPUExecutionProvider",)
    assert DaemonConfig(model="m").execution_providers == ("CPUExecutionProvider",)


@pytest.mark.parametrize("value", ["CUDA", "TensorRT,CPU", "NoSuchProvider"])
def test_unavailable_execution_provider_names_the_available_ones(value: str) -> None:
    import onnxruntime as ort

    with pytest.raises(ConfigError) as caught:
        load_config(None, {"model": "m", "execution_providers": value}, environ={})
    message = str(caught.value)
    assert "\n" not in message and repr(value.split(",")[0]) in message
    assert all(name in message for name in ort.get_available_providers())


def test_empty_execution_providers_is_an_error() -> None:
    with pytest.raises(ConfigError, match="at least one provider"):
        load_config(None, {"model": "m"}, environ={"SLR_EDGE_EXECUTION_PROVIDERS": ""})


def test_command_line_flags_map_onto_config_fields() -> None:
    from edge.commands.edge_cli import build_parser
    from edge.daemon.config import flag_values

    args = build_parser().parse_args(
        ["run", "--model", "m.onnx", "--stride", "3", "--no-resample", "--idle-after", "2", "--loop",
         "--top-k", "4", "--log-level", "debug", "--status-interval", "0.5"]
    )  # fmt: skip
    flags = flag_values(args)
    config = load_config(None, flags, environ={"SLR_EDGE_STRIDE": "9", "SLR_EDGE_THRESHOLD": "0.7"})
    assert (config.stride, config.resample, config.idle_after_s, config.loop) == (3, False, 2.0, True)
    assert (config.top_k, config.log_level, config.status_interval_s) == (4, "DEBUG", 0.5)
    assert config.threshold == 0.7  # flag absent: the environment's value stands
    assert config.allow_remote is False and config.consecutive == 2

"""Model loading: contract checks with one-line errors, and prediction shapes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers_onnx import DEFAULT_LABELS, build_tiny_onnx, default_metadata

from edge.contract.model_contract import META_FPS, META_LABELS, META_LAYOUT, META_WINDOW
from edge.contract.preprocess import preprocess
from edge.recognition.inference import ModelError, load_model
from edge.util.files import file_sha256


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_onnx(tmp_path_factory.mktemp("model") / "tiny.onnx")


def one_line_error(path: Path, match: str) -> str:
    with pytest.raises(ModelError, match=match) as info:
        load_model(path)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_loads_and_predicts(model_path: Path, tiny_vectors: dict[str, np.ndarray]) -> None:
    model = load_model(model_path, threads=1)
    assert model.labels == DEFAULT_LABELS
    assert (model.window, model.fps, model.name) == (128, 30.0, "tiny")
    assert model.sha256 == file_sha256(model_path) and len(model.sha256) == 64
    assert model.source_sha256 == "0" * 64
    frames, idx = preprocess(tiny_vectors["case0_raw"])
    logits = model.predict(frames, idx)
    assert logits.shape == (len(DEFAULT_LABELS),) and np.isfinite(logits).all()
    batch = model.predict_batch(np.stack([frames, frames * 0.5]), np.stack([idx, idx]))
    assert batch.shape == (2, len(DEFAULT_LABELS))
    np.testing.assert_allclose(batch[0], logits, rtol=1e-5, atol=1e-5)
    assert not np.allclose(batch[0], batch[1])  # the output depends on the input
    with pytest.raises(ValueError, match="expected frames"):
        model.predict(frames[:64], idx[:64])


def test_missing_file(tmp_path: Path) -> None:
    one_line_error(tmp_path / "nope.onnx", "does not exist")


def test_directory(tmp_path: Path) -> None:
    one_line_error(tmp_path, "is not a file")


def test_truncated_file(tmp_path: Path, model_path: Path) -> None:
    bad = tmp_path / "truncated.onnx"
    bad.write_bytes(model_path.read_bytes()[:1000])
    one_line_error(bad, "not a usable ONNX model")


def test_not_onnx(tmp_path: Path) -> None:
    bad = tmp_path / "text.onnx"
    bad.write_text("hello, I am not a model\n")
    one_line_error(bad, "not a usable ONNX model")


def test_missing_metadata_keys_are_named(tmp_path: Path) -> None:
    path = build_tiny_onnx(tmp_path / "m.onnx", drop_keys=(META_LABELS, META_FPS))
    message = one_line_error(path, "lacks metadata")
    assert META_LABELS in message and META_FPS in message and META_WINDOW not in message


def test_labels_length_mismatch(tmp_path: Path) -> None:
    path = build_tiny_onnx(tmp_path / "m.onnx", classes=7)
    one_line_error(path, "outputs 7 classes but slr.labels lists 10 labels")


def test_labels_not_json(tmp_path: Path) -> None:
    meta = default_metadata(DEFAULT_LABELS)
    meta[META_LABELS] = "[not json"
    one_line_error(build_tiny_onnx(tmp_path / "m.onnx", metadata=meta), "not valid JSON")


def test_wrong_layout(tmp_path: Path) -> None:
    meta = default_metadata(DEFAULT_LABELS)
    meta[META_LAYOUT] = "other_layout"
    one_line_error(build_tiny_onnx(tmp_path / "m.onnx", metadata=meta), "layout 'other_layout'")


def test_window_metadata_must_match_input_shape(tmp_path: Path) -> None:
    meta = default_metadata(DEFAULT_LABELS, window=64)
    one_line_error(
        build_tiny_onnx(tmp_path / "m.onnx", metadata=meta), r"input frames has shape .*expected \[batch, 64"
    )


def test_wrong_input_names(tmp_path: Path) -> None:
    path = build_tiny_onnx(tmp_path / "m.onnx", input_names=("x", "frame_idx"))
    one_line_error(path, "has inputs")


def test_exported_tiny_checkpoint_reproduces_golden_logits(
    tiny_onnx_path: Path, tiny_vectors: dict[str, np.ndarray]
) -> None:
    """The real ``slr-export`` output, run by the edge runtime, matches the reference logits to 1e-4."""
    model = load_model(tiny_onnx_path, threads=1)
    assert len(model.labels) == 10 and model.window == 128 and model.fps == 30.0
    assert all(label.startswith("класс_") for label in model.labels)
    for case in range(3):
        frames, idx = preprocess(tiny_vectors[f"case{case}_raw"])
        np.testing.assert_allclose(frames, tiny_vectors[f"case{case}_frames"], atol=1e-6)
        logits = model.predict(frames, idx)
        np.testing.assert_allclose(logits, tiny_vectors[f"case{case}_logits"][0], atol=1e-4)


def nan_model(model_path: Path, out: Path) -> Path:
    """A contract-valid copy of ``model_path`` whose weights are NaN (a diverged checkpoint)."""
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(str(model_path))
    for i, tensor in enumerate(proto.graph.initializer):
        values = numpy_helper.to_array(tensor)
        if values.dtype == np.float32:
            poisoned = numpy_helper.from_array(np.full_like(values, np.nan), tensor.name)
            proto.graph.initializer[i].CopyFrom(poisoned)
    onnx.save(proto, str(out))
    return out


def test_model_with_non_finite_outputs_is_refused(model_path: Path, tmp_path: Path) -> None:
    message = one_line_error(nan_model(model_path, tmp_path / "nan.onnx"), "non-finite")
    assert "nan.onnx" in message


def test_finiteness_check_is_callable_with_any_session(model_path: Path) -> None:
    """Export's verification holds a bare ORT session, not an EdgeModel: the check takes a callable."""
    from edge.recognition.inference import check_finite_outputs, create_session

    session = create_session(model_path)

    def run(frames: np.ndarray, idx: np.ndarray) -> np.ndarray:
        return session.run(["logits"], {"frames": frames, "frame_idx": idx})[0]

    check_finite_outputs(run, 128, model_path)  # finite: no error
    with pytest.raises(ModelError, match="non-finite"):
        check_finite_outputs(lambda f, i: run(f, i) * np.inf, 128, "probe")


def test_a_passed_probe_is_remembered_by_checksum_and_runtime(
    model_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The finiteness probe runs once per file, ORT version and providers; other bytes are probed afresh."""
    from edge.recognition import inference, probe_record

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    runs: list[str] = []
    real = inference.check_finite_outputs

    def counting(predict: Any, window: int, origin: Any) -> None:
        runs.append(str(origin))
        real(predict, window, origin)

    monkeypatch.setattr(inference, "check_finite_outputs", counting)
    load_model(model_path)
    load_model(model_path)
    assert len(runs) == 1 and list((tmp_path / "cache" / "slovo-edge" / "probed").iterdir())
    # A NaN copy has other bytes: probed, and refused, although a marker exists for the original.
    with pytest.raises(ModelError, match="non-finite"):
        load_model(nan_model(model_path, tmp_path / "nan.onnx"))
    assert len(runs) == 2
    # Switched off, or another ORT version: probed again.
    monkeypatch.setenv(probe_record.ENV_SWITCH, "0")
    load_model(model_path)
    monkeypatch.delenv(probe_record.ENV_SWITCH)
    import onnxruntime as ort

    monkeypatch.setattr(ort, "__version__", "0.0.0-other")
    load_model(model_path)
    assert len(runs) == 4


def test_an_unwritable_probe_cache_only_costs_the_probe(
    model_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    assert load_model(model_path).labels
    assert load_model(model_path).labels


def test_a_service_without_a_home_loads_models_and_probes(
    model_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under systemd's DynamicUser there is no $HOME and no passwd entry: Path.home() raises there.

    The daemon crash-looped on it in a booted unit (tests/test_deploy_systemd.py); the probe
    marker is then simply not kept.
    """
    import pwd

    def no_entry(uid: int) -> object:
        raise KeyError(f"getpwuid(): uid not found: {uid}")

    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.delenv("HOME", raising=False)
    monkeypatch.setattr(pwd, "getpwuid", no_entry)
    with pytest.raises(RuntimeError):
        Path.home()  # what a service without a home meets
    assert load_model(model_path).labels

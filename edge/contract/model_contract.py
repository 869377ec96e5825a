"""The contract between ``slr-export`` and the daemon: graph I/O names and metadata keys.

The ``.onnx`` file is all the daemon needs, so everything it must know travels in the model's
``metadata_props`` under these keys. Export writes them; ``edge`` reads them; nothing else
spells these strings.
"""

from __future__ import annotations

INPUT_FRAMES = "frames"  # float32 [batch, window, 92, 3], preprocessed (docs/MODEL.md §3)
INPUT_FRAME_IDX = "frame_idx"  # float32 [batch, window], -1 marks padding
OUTPUT_LOGITS = "logits"  # float32 [batch, classes]

META_LABELS = "slr.labels"  # JSON list of class names, index = class id
META_WINDOW = "slr.window"  # int, frames per window (128)
META_LAYOUT = "slr.layout"  # name of the 92-row layout (edge.contract.layout.LAYOUT_NAME)
META_CONFIG = "slr.config"  # JSON of the model configuration
META_SOURCE_SHA256 = "slr.source_sha256"  # sha256 of the checkpoint the model came from
META_EXPORTER_VERSION = "slr.exporter_version"
META_FPS = "slr.fps"  # frame rate the model was trained at (default 30)
META_UNTRAINED = "slr.untrained"  # "true" for --random-init weights: predictions are meaningless

REQUIRED_METADATA = (META_LABELS, META_WINDOW, META_LAYOUT, META_CONFIG, META_SOURCE_SHA256, META_FPS)
DEFAULT_FPS = 30.0
#: The frame rates a model may declare (``slr.fps``, ``slr-export --fps``): resampling a window to
#: an absurd rate would allocate without bound, so a value outside this range is refused.
MIN_FPS = 1.0
MAX_FPS = 240.0


def fps_problem(fps: float) -> str | None:
    """Why ``fps`` is not an acceptable model frame rate, or None if it is."""
    if not MIN_FPS <= fps <= MAX_FPS:  # False for NaN too
        return f"must be between {MIN_FPS:g} and {MAX_FPS:g} frames/s, got {fps:g}"
    return None


#: Slovo's no-sign class; never produces a ``sign`` event.
NO_SIGN_LABEL = "---"

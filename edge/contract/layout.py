"""The one place that defines the MediaPipe Holistic landmark layout and the model's row subset.

Every frame is ``float32 [543, 3]`` (x, y, z in MediaPipe's normalised image coordinates, NaN
where a part was not detected). Training, export and the daemon all import these constants, so
the layout the model was trained on is, by construction, the one it is served with
(docs/MODEL.md §2).
"""

from __future__ import annotations

import numpy as np

NUM_LANDMARKS = 543
NUM_COORDS = 3

FACE = slice(0, 468)
LEFT_HAND = slice(468, 489)
POSE = slice(489, 522)
RIGHT_HAND = slice(522, 543)

#: Name recorded in exported models (``slr.layout``) for the 92-row subset below.
LAYOUT_NAME = "slr_slovo_92"

#: Face-mesh rows of the lips, in the model's order.
LIPS_ROWS = (
    61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 146, 91, 181, 84, 17, 314, 405, 321, 375,
    78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308,
)  # fmt: skip
LEFT_HAND_ROWS = tuple(range(LEFT_HAND.start, LEFT_HAND.stop))
RIGHT_HAND_ROWS = tuple(range(RIGHT_HAND.start, RIGHT_HAND.stop))
#: Pose rows the model uses (left-side arm landmarks 13, 15, 17, 19, 21 of the 33-point pose).
POSE_ROWS = (502, 504, 506, 508, 510)
#: Pose rows carried in the input tensor but ignored by the model.
POSE_EXTRA_ROWS = (503, 505, 507, 509, 511)

#: Indices into the 543 rows, giving the 92 model rows in order.
MODEL_ROWS = np.array(
    LIPS_ROWS + LEFT_HAND_ROWS + RIGHT_HAND_ROWS + POSE_ROWS + POSE_EXTRA_ROWS, dtype=np.int64
)
NUM_MODEL_ROWS = len(MODEL_ROWS)  # 92

# Groups within the 92 model rows (what the model's embeddings consume).
MODEL_LIPS = slice(0, 40)
MODEL_LEFT_HAND = slice(40, 61)
MODEL_RIGHT_HAND = slice(61, 82)
MODEL_POSE = slice(82, 87)
#: Model rows whose x is mirrored (x <- 1 - x) in preprocessing: both hands.
MODEL_HAND_ROWS = np.arange(MODEL_LEFT_HAND.start, MODEL_RIGHT_HAND.stop)


def empty_frame() -> np.ndarray:
    """A frame in which nothing was detected: all NaN."""
    return np.full((NUM_LANDMARKS, NUM_COORDS), np.nan, dtype=np.float32)


def has_hands(raw: np.ndarray) -> np.ndarray:
    """Whether frames contain any non-NaN hand value (docs/MODEL.md §3 step 1).

    ``raw`` is ``[N, 543, 3]`` (gives ``bool [N]``) or one frame ``[543, 3]`` (gives a bool scalar).
    """
    left = ~np.isnan(raw[..., LEFT_HAND, :]).all(axis=(-2, -1))
    right = ~np.isnan(raw[..., RIGHT_HAND, :]).all(axis=(-2, -1))
    return left | right

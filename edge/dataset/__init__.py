"""Dataset preparation (not device runtime): batch keypoint extraction with ``slr-extract``."""

"""The keypoint stage: MediaPipe Holistic extraction, the rolling keypoint buffer, resampling."""

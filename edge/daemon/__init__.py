"""The ``slr-edge run`` daemon: orchestrates camera → keypoints → recognition → transport."""

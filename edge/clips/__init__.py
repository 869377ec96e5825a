"""The whole-file path: a video file's frames → keypoints → episodes or one classification → captions."""

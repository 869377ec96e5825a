"""The camera stage: video sources, the capture thread, JPEG frames, the motion gate, decode-ahead."""

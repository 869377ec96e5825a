"""slovo-edge on-device runtime: keypoints, preprocessing, buffer, inference, ZeroMQ.

This package must never import torch: the device installs only the ``edge`` extra.
"""

__version__ = "0.1.0"

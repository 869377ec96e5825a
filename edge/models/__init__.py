"""Published models: a registry (data), a checksum-keyed cache, downloads and ONNX checks (``slr-model``).

Torch-free, like the rest of ``edge/``: a prebuilt ``.onnx`` is fetched, checked and installed
with what a device has; only a checkpoint source reaches into ``export/`` (and so torch), lazily.
"""

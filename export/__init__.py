"""Checkpoint → self-contained, verified, fast ONNX model for the edge daemon (``slr-export``).

Torch is needed here (export runs on a workstation); the device only needs the ``.onnx`` file.
"""

from export.exporter import ExportReport, Int8Report, ParityError, export_checkpoint, format_report
from export.sources import ExportError

__all__ = ["ExportError", "ExportReport", "Int8Report", "ParityError", "export_checkpoint", "format_report"]

"""Deployable exports of a (pruned) generator: sparse, dense, shrunk and ONNX files.

The bytes of each file are :mod:`gancompress.formats` (the sparse layout:
``docs/sparse_format.md``); :func:`gancompress.api.load` reads every export back into an ``nn.Module``.
"""
from .config import DTYPE_NAMES, ExportConfig, ExportResult
from .formats import EXPORT_FORMATS, ExportFormat, names
from .run import export, export_bundle

__all__ = ["DTYPE_NAMES", "EXPORT_FORMATS", "ExportConfig", "ExportFormat", "ExportResult", "export", "export_bundle",
           "names"]

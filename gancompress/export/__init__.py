"""Deployable exports of a (pruned) generator: sparse, dense, shrunk and ONNX files.

The bytes of each file are :mod:`gancompress.formats` (the sparse layout:
``docs/sparse_format.md``); :func:`gancompress.api.load` reads every export back into an ``nn.Module``.
"""
from ..formats.export_file import DTYPES
from .config import FORMATS, ExportConfig, ExportResult
from .writer import export, export_bundle

__all__ = ["DTYPES", "FORMATS", "ExportConfig", "ExportResult", "export", "export_bundle"]

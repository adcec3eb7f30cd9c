"""Deployable exports of a (pruned) generator: sparse, dense, shrunk and ONNX files.

The sparse layout is documented in ``docs/sparse_format.md``; :func:`gancompress.api.load`
reads every export back into an ``nn.Module``.
"""
from .sparse_format import FORMAT_DENSE, FORMAT_SPARSE, FORMAT_VERSION, decode, encode
from .writer import DTYPES, FORMATS, ExportConfig, ExportResult, export, export_bundle, masked_generator

__all__ = [
    "DTYPES", "FORMATS", "FORMAT_DENSE", "FORMAT_SPARSE", "FORMAT_VERSION", "ExportConfig", "ExportResult",
    "decode", "encode", "export", "export_bundle", "masked_generator",
]

"""What to export, where and how (:class:`ExportConfig`), and what was written (:class:`ExportResult`)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..registry import unknown_choice

DTYPE_NAMES = ("float32", "float16", "bfloat16")  # the keys of formats.export_file.DTYPES


@dataclass(frozen=True)
class ExportConfig:
    """What to export, where, and how."""

    source: str
    output: Path
    format: str = "sparse"
    dtype: str | None = None  # None keeps the checkpoint's dtype
    force: bool = False
    trust_pickle: bool = False
    arch: str | None = None
    arch_kwargs: dict[str, Any] | None = None


@dataclass
class ExportResult:
    """The file written and how it compares with the dense float32 file."""

    path: str
    format: str
    dtype: str
    file_bytes: int
    dense_float32_bytes: int
    ratio: float
    parameters: int
    nonzeros: int
    architecture: str
    encodings: dict[str, int] = field(default_factory=dict)
    shrink: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_dtype(config: ExportConfig) -> None:
    if config.dtype is not None and config.dtype not in DTYPE_NAMES:
        raise unknown_choice("dtype", config.dtype, DTYPE_NAMES)

"""What to export, where and how (:class:`ExportConfig`), and what was written (:class:`ExportResult`)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InputError
from ..registry import unknown_choice

if TYPE_CHECKING:  # the loader imports torch; keep this module light
    from ..loading import LoadOptions

DTYPE_NAMES = ("float32", "float16", "bfloat16")  # the keys of formats.export_file.DTYPES


@dataclass(frozen=True)
class ExportConfig:
    """What to export, where, and how."""

    source: str
    output: Path
    format: str = "sparse"
    dtype: str | None = None  # None keeps the checkpoint's dtype
    quantize: str | None = None  # an 8-bit weight scheme (formats.quantize.SCHEMES: int8, fp8); None keeps floats
    encodings: tuple[str, ...] | None = None  # sparse format: only these encodings (and dense); None: the smallest
    shrink: bool = True  # onnx: export the shrunk network when whole filters are zero (False: the masked dense graph)
    force: bool = False
    trust_pickle: bool = False
    arch: str | None = None
    arch_kwargs: dict[str, Any] | None = None
    load: LoadOptions | None = None  # wins over trust_pickle/arch/arch_kwargs when given (--d-arch too)


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
    quantize: str | None = None  # the weights' 8-bit scheme, when quantized
    shrink: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)  # what the export did not gain, and how it could

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_dtype(config: ExportConfig) -> None:
    """``dtype``, ``quantize`` and ``encodings`` are known names and combine."""
    if config.dtype is not None and config.dtype not in DTYPE_NAMES:
        raise unknown_choice("dtype", config.dtype, DTYPE_NAMES)
    if config.encodings is not None:
        from ..formats.sparse import check_encodings

        check_encodings(config.encodings)
        if config.format != "sparse":
            raise InputError(f"--encodings applies to --format sparse only, not {config.format} (drop it)")
    if config.quantize is None:
        return
    from ..formats.quantize import SCHEMES

    SCHEMES.get(config.quantize)
    if config.dtype not in (None, "float32"):
        raise InputError(f"--quantize {config.quantize} stores the weights in 8 bits and dequantizes them to float32; "
                         f"it does not combine with --dtype {config.dtype} (drop one of them)")

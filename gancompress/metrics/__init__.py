"""Quality and cost metrics.

- :mod:`.extractors`: feature extractors (``digits``, ``inception``, your own) for torch-fidelity;
- :mod:`.fidelity`: FID/KID/ISC/precision-recall through ``torch_fidelity.calculate_metrics``;
- :mod:`.similarity`: PSNR, SSIM, mean absolute difference (compressed vs dense, or vs ground truth);
- :mod:`.cost`: parameters, nonzeros, dense/effective MACs, file size, latency and throughput;
- :mod:`.digits_classifier`: the bundled 16x16 digits classifier behind the ``digits`` extractor.

Submodules are imported on demand (``import gancompress.metrics`` stays cheap).
"""
from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "EXTRACTORS": "extractors", "register_module_extractor": "extractors", "get_extractor": "extractors",
    "find_inception_weights": "extractors", "distribution_metrics": "fidelity", "psnr": "similarity",
    "ssim": "similarity", "mean_abs_diff": "similarity", "count_macs": "cost", "measure_latency": "cost",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

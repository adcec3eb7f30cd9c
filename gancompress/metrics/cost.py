"""What a generator costs: parameters, nonzeros, MACs (dense and effective), file size, speed.

**Effective MACs** approximate what a sparse kernel would do: PyTorch's ``FlopCounterMode``
gives the dense multiply-accumulates of every module; for each ``Conv*``, ``ConvTranspose*``
and ``Linear`` layer its MACs are scaled by the layer's density (the nonzero fraction of its
weight), the rest (matmuls outside those layers) is counted dense. This assumes zeros are
spread evenly over the positions where a weight is used: exact for linear layers and for
convolutions without padding, close otherwise. Bias additions, normalisation and activations
are not MACs and are not counted (as in the dense figure).
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..archs.base import meta_forward
from ..layer_table import is_weight_layer


@dataclass
class MacCount:
    dense: int
    effective: int


@dataclass
class Latency:
    """Median milliseconds for one sample (batch 1) and samples/second at ``batch_size``."""

    median_ms: float
    throughput: float
    batch_size: int
    device: str


def parameter_counts(model: nn.Module) -> tuple[int, int]:
    """(parameters, nonzero parameters)."""
    params = list(model.parameters())
    return sum(p.numel() for p in params), sum(int(torch.count_nonzero(p)) for p in params)


def layer_density(module: nn.Module) -> float:
    # parametrized modules give the effective weight; an old-style (hook) spectral/weight norm keeps the
    # last forward's weight as a plain attribute, which is stale (a meta tensor after a meta forward): its
    # original has the same zeros (the norm scales it)
    weight = next((getattr(module, n) for n in ("weight_orig", "weight_v") if isinstance(getattr(module, n, None),
                                                                                     torch.Tensor)), module.weight)
    return float(torch.count_nonzero(weight)) / max(1, weight.numel())


@torch.no_grad()
def flop_counts(model: nn.Module, input_shape: tuple[int, ...]) -> tuple[int, dict[str, int]] | None:
    """(total FLOPs, FLOPs per module name) of one sample, or None when the model cannot be traced."""
    from torch.utils.flop_counter import FlopCounterMode

    if getattr(model, "traceable", True) is False:  # e.g. an ONNX file run by onnxruntime
        return None
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    try:
        counter = FlopCounterMode(display=False)
        with counter:  # FLOPs depend on shapes only: count on the meta device when the forward allows
            on_meta = meta_forward(model, input_shape) is not None
        if not on_meta:
            counter = FlopCounterMode(display=False)
            with counter:
                model(torch.zeros(1, *input_shape, device=device))
        per_module = {name: sum(ops.values()) for name, ops in counter.get_flop_counts().items()}
        return int(counter.get_total_flops()), per_module
    except Exception:  # noqa: BLE001 - a custom module may not trace; MACs are then unknown
        return None
    finally:
        model.train(was_training)


def count_macs(model: nn.Module, input_shape: tuple[int, ...]) -> MacCount | None:
    """Dense and effective MACs for one sample (``None`` when the model cannot be traced).

    A module that counts its own (``macs``: ``(dense, effective)``, as an ONNX generator does) is taken at its word."""
    if getattr(model, "macs", None) is not None:
        return MacCount(*model.macs)
    counted = flop_counts(model, input_shape)
    if counted is None:
        return None
    total, per_module = counted
    root = type(model).__name__
    saved = 0.0
    for name, module in model.named_modules():
        if not is_weight_layer(module) or not name:
            continue
        flops = per_module.get(f"{root}.{name}", 0)
        saved += flops * (1.0 - layer_density(module))
    return MacCount(dense=total // 2, effective=int(round((total - saved) / 2)))


def file_size(path: Path | None) -> int | None:
    """Bytes on disk: a file, or the checkpoint files of a directory."""
    if path is None or not path.exists():
        return None
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def timed_calls(model: nn.Module, x: torch.Tensor, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        _sync(x.device)
        start = time.perf_counter()
        model(x)
        _sync(x.device)
        times.append(time.perf_counter() - start)
    return times


@torch.no_grad()
def measure_latency(model: nn.Module, input_shape: tuple[int, ...], device: str | torch.device, batch_size: int,
                    *, warmup: int = 3, repeats: int = 20, seed: int = 0, num_classes: int | None = None) -> Latency:
    """Median latency at batch 1 and throughput at ``batch_size`` after ``warmup`` untimed runs."""
    from ..generation import draw_latents

    device = torch.device(device)
    model = model.eval().to(device)
    g = torch.Generator().manual_seed(seed)
    one = draw_latents(1, input_shape, g, num_classes).to(device)
    many = draw_latents(batch_size, input_shape, g, num_classes).to(device)
    timed_calls(model, one, warmup)
    median = statistics.median(timed_calls(model, one, repeats))
    timed_calls(model, many, max(1, warmup // 2))
    batch_times = timed_calls(model, many, max(3, repeats // 4))
    throughput = batch_size / statistics.median(batch_times)
    return Latency(median * 1000.0, throughput, batch_size, str(device))

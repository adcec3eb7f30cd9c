"""What is inside a checkpoint: per-layer shapes, sparsity and structure, totals, MACs."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from .archs import ArchSpec
from .formats.checkpoint import GanBundle
from .layer_table import is_weight_layer


def _structure(module: nn.Module, nonzeros: dict[int, int]) -> str:
    from .prune import module_structure
    from .prune.layers import param_key

    weight = module.get_parameter(param_key("", module))
    known = nonzeros.get(id(weight))
    with torch.no_grad():
        return module_structure(module, zeros=None if known is None else weight.numel() - known)


def _nonzeros(model: nn.Module) -> dict[int, int]:
    """Nonzeros of every parameter, counted once (a pass over a large checkpoint costs seconds)."""
    return {id(p): int(torch.count_nonzero(p.detach())) for p in model.parameters()}


def layer_rows(model: nn.Module, nonzeros: dict[int, int] | None = None) -> list[dict[str, Any]]:
    """One row per parameterised leaf module (weights of conv/linear layers get a structure)."""
    nonzeros = nonzeros if nonzeros is not None else _nonzeros(model)
    rows = []
    for name, module in model.named_modules():
        params = list(module.named_parameters(recurse=False))
        if not params:
            continue
        weight = getattr(module, "weight", None)
        if not isinstance(weight, torch.Tensor):
            weight = getattr(module, "weight_orig", None)  # spectral norm
        numel = sum(p.numel() for _, p in params)
        zeros = numel - sum(nonzeros[id(p)] for _, p in params)
        weight_layer = is_weight_layer(module) and isinstance(weight, torch.Tensor)
        rows.append({
            "name": name or "(root)",
            "type": type(module).__name__,
            "shape": list(weight.shape) if isinstance(weight, torch.Tensor) else [],
            "params": numel,
            "zeros_pct": round(100.0 * zeros / max(1, numel), 2),
            "structure": _structure(module, nonzeros) if weight_layer else "-",
        })
    return rows


def macs_per_sample(model: nn.Module, input_shape: tuple[int, ...]) -> int | None:
    """Dense multiply-accumulates for one sample (flop_counter's FLOPs / 2)."""
    from .metrics.cost import count_macs

    counted = count_macs(model, input_shape)
    return None if counted is None else counted.dense


def network_summary(model: nn.Module, input_shape: tuple[int, ...] | None) -> dict[str, Any]:
    params, counts = list(model.parameters()), _nonzeros(model)
    total = sum(p.numel() for p in params)
    nonzero = sum(counts[id(p)] for p in params)
    dtypes = sorted({str(p.dtype).replace("torch.", "") for p in params})
    return {
        "parameters": total,
        "nonzeros": nonzero,
        "sparsity_pct": round(100.0 * (1 - nonzero / max(1, total)), 2),
        "dtype": ",".join(dtypes),
        "macs_per_sample": macs_per_sample(model, input_shape) if input_shape else None,
        "layers": layer_rows(model, counts),
    }


def _discriminator_input_shape(bundle: GanBundle, g_out: tuple[int, ...] | None, g_in: tuple[int, ...] | None,
                                input_kind: str | None) -> tuple[int, ...] | None:
    if g_out is None or bundle.discriminator is None:
        return None
    first = next((m for m in bundle.discriminator.modules() if isinstance(m, (nn.Conv2d, nn.Linear))), None)
    in_ch = first.in_channels if isinstance(first, nn.Conv2d) else None
    if in_ch is not None and in_ch != g_out[0] and input_kind == "image" and g_in and in_ch == g_out[0] + g_in[0]:
        return (in_ch, *g_out[1:])  # conditional D: concat(input, output)
    return g_out


def _size_on_disk(path: Path | None) -> int | None:
    if path is None:
        return None
    if path.is_file():
        return path.stat().st_size
    from .sources import checkpoint_files

    return sum(p.stat().st_size for p in checkpoint_files(path))


def file_quantization(path: Path | None, rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The 8-bit scheme of an ``export --quantize`` file (None for any other source); marks each
    quantized layer's row with ``quantized`` (``int8 per-channel`` ...)."""
    from .formats.export_file import export_metadata
    from .formats.quantized_file import read_quantization

    metadata = export_metadata(path) if path is not None else None
    quant = read_quantization(metadata, str(path)) if metadata else None
    if quant is None:
        return None
    for row in rows:
        row["quantized"] = quant.describe("weight" if row["name"] == "(root)" else f"{row['name']}.weight")
    return quant.summary()


def inspect_bundle(bundle: GanBundle, path: Path | None = None) -> dict[str, Any]:
    """A JSON-ready description of a loaded checkpoint."""
    from .generation import generator_info

    try:
        info = generator_info(bundle)
        g_in, g_out, kind = info.input_shape, info.output_shape, info.input_kind
    except Exception:  # noqa: BLE001 - still describe what we can
        g_in, g_out, kind = None, None, None
    report: dict[str, Any] = {
        "source": bundle.source,
        "role": "generator",
        "file_size": _size_on_disk(path),
        "generator": {"architecture": bundle.arch_name, "kwargs": bundle.g_spec.kwargs if bundle.g_spec else None,
                      "input_kind": kind, "input_shape": list(g_in) if g_in else None,
                      "output_shape": list(g_out) if g_out else None,
                      **network_summary(bundle.generator, g_in),
                      "truncation_w_avg": getattr(bundle.generator, "truncation_w_avg", None)},
        "discriminator": None,
        "has_discriminator": bundle.discriminator is not None,
        "masks": len(bundle.masks),
        "pruning": bundle.meta.get("pruning"),
    }
    report["quantization"] = file_quantization(path, report["generator"]["layers"])
    if bundle.discriminator is not None:
        d_in = _discriminator_input_shape(bundle, g_out, g_in, kind)
        report["discriminator"] = {"architecture": bundle.d_spec.name if bundle.d_spec else "custom",
                                   "kwargs": bundle.d_spec.kwargs if bundle.d_spec else None,
                                   **network_summary(bundle.discriminator, d_in)}
    return report


def inspect_discriminator_only(spec: ArchSpec, state_dict: Mapping[str, torch.Tensor], source: str,
                               path: Path | None = None) -> dict[str, Any]:
    """The report for a file that holds a recognised discriminator and no generator."""
    from .archs import ARCHITECTURES
    from .archs.base import build_detected

    arch = ARCHITECTURES.get(spec.name)
    module = build_detected(spec, state_dict, "discriminator")
    d_in = tuple(arch.probe_shape(spec.kwargs)) if arch.probe_shape else None
    return {
        "source": source,
        "role": "discriminator",
        "file_size": _size_on_disk(path),
        "generator": None,
        "discriminator": {"architecture": spec.name, "kwargs": spec.kwargs, "d_output": arch.d_output,
                          "input_shape": list(d_in) if d_in else None, **network_summary(module, d_in)},
        "has_discriminator": True,
        "masks": 0,
        "pruning": None,
    }

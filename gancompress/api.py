"""Library entry points for users: ``load`` any gancompress export or checkpoint.

``gancompress.api.load(path)`` returns the generator as an ``nn.Module`` in eval mode from a
sparse, dense or shrunk export (``gancompress export``), from a project checkpoint (masks
applied) or from any SOURCE that ``gancompress inspect`` reads.
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .archs import ArchSpec, build, load_into
from .errors import InputError
from .export import sparse_format as sf

EXPORT_FORMATS = (sf.FORMAT_SPARSE, sf.FORMAT_DENSE)


@dataclass
class ExportedGenerator:
    """A decoded export: the dense state dict, the architecture spec and the file's metadata."""

    state_dict: dict[str, torch.Tensor]
    spec: ArchSpec
    metadata: dict[str, str]


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # safetensors raises its own error types for truncated/garbled files
        raise InputError(f"{path}: not a readable safetensors file ({str(exc).strip() or type(exc).__name__}); "
                         "it is truncated or damaged, export it again") from None
    return tensors, metadata


def export_metadata(path: str | Path) -> dict[str, str] | None:
    """The metadata of a gancompress export, None when ``path`` is another kind of file."""
    path = Path(path)
    if path.suffix != ".safetensors" or not path.is_file():
        return None
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = dict(f.metadata() or {})
    except Exception as exc:
        raise InputError(f"{path}: not a readable safetensors file ({str(exc).strip() or type(exc).__name__}); "
                         "it is truncated or damaged, export it again") from None
    return metadata if metadata.get("format") in EXPORT_FORMATS else None


def _table(metadata: dict[str, str], source: str) -> dict[str, dict[str, Any]]:
    try:
        table = json.loads(metadata.get("tensors", "{}"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{source}: damaged 'tensors' metadata ({exc.msg}); export it again") from None
    if not isinstance(table, dict) or not all(isinstance(v, dict) for v in table.values()):
        raise InputError(f"{source}: damaged 'tensors' metadata; export it again")
    return table


def decode_tensors(tensors: dict[str, torch.Tensor], table: dict[str, dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Dense tensors from a file's stored arrays and its ``tensors`` table (validated)."""
    from .export.writer import to_numpy, to_torch

    out: dict[str, torch.Tensor] = {}
    used: set[str] = set()
    for name, info in table.items():
        suffixes = sf.SUFFIXES.get(info.get("encoding"), ())
        arrays = {s: to_numpy(tensors[f"{name}.{s}"]) for s in suffixes if f"{name}.{s}" in tensors}
        used.update(f"{name}.{s}" for s in suffixes)
        dtype = _stored_dtype(name, info, tensors)
        out[name] = to_torch(sf.decode(name, info, arrays), dtype)
    for key, value in tensors.items():
        if key not in used:
            out[key] = value
    return out


def _stored_dtype(name: str, info: dict[str, Any], tensors: dict[str, torch.Tensor]) -> torch.dtype:
    values = tensors.get(f"{name}.compressed")
    if values is None:
        raise sf.damaged(name, f"missing array {name}.compressed")
    recorded = info.get("dtype")
    if str(values.dtype).removeprefix("torch.") != recorded:
        raise sf.damaged(name, f"values are {values.dtype} but the table records {recorded!r}")
    return values.dtype


def read_export(path: str | Path) -> ExportedGenerator:
    """Read and decode a ``gancompress-sparse`` / ``gancompress-dense`` file."""
    path = Path(path)
    tensors, metadata = _read_safetensors(path)
    if metadata.get("format") not in EXPORT_FORMATS:
        raise InputError(f"{path}: not a gancompress export (format {metadata.get('format')!r})")
    if metadata.get("format_version") != sf.FORMAT_VERSION:
        raise InputError(f"{path}: export format version {metadata.get('format_version')!r} is not supported "
                         f"(this gancompress reads version {sf.FORMAT_VERSION}); upgrade gancompress")
    try:
        spec = ArchSpec.from_json(metadata["g_arch"])
    except (KeyError, json.JSONDecodeError, TypeError) as exc:
        raise InputError(f"{path}: damaged architecture metadata ({exc}); export it again") from None
    state = decode_tensors(tensors, _table(metadata, str(path)))
    return ExportedGenerator(state, spec, metadata)


def build_exported(exported: ExportedGenerator, source: str, arch: str | None = None) -> nn.Module:
    """The generator module of a decoded export, weights loaded, in eval mode."""
    spec = exported.spec
    if spec.name.startswith("shrunk:"):
        from .export.shrink import ensure_shrunk_arch

        ensure_shrunk_arch(spec.name)
    target = spec.kwargs.get("target") if spec.name == "custom" else None
    if target and arch != target:
        raise InputError(f"{source} uses your own architecture {target}; pass arch={target!r} to load it")
    try:
        module = build(spec)
    except InputError:
        raise
    except Exception as exc:  # a tampered spec may fail anywhere in a constructor
        raise InputError(f"{source}: cannot build {spec.name} from its recorded spec ({exc}); export it again") from None
    floats = {v.dtype for v in exported.state_dict.values() if v.is_floating_point()}
    if len(floats) == 1:
        module = module.to(next(iter(floats)))
    return load_into(module, exported.state_dict, f"generator {spec.name} in {source}").eval()


def load(source: str | Path, *, arch: str | None = None, trust_pickle: bool = False) -> nn.Module:
    """The generator in eval mode from any gancompress export, project checkpoint or SOURCE.

    Project checkpoints and other sources come back with their pruning masks applied.
    ``arch`` names your own architecture (``module:Callable``) when the file records one.
    """
    path = Path(str(source)).expanduser()
    if path.suffix == ".onnx":
        raise InputError(f"{source} is an ONNX file; run it with onnxruntime (load() returns torch modules)")
    if export_metadata(path) is not None:
        exported = read_export(path)
        return with_sampling(build_exported(exported, str(source), arch), exported.spec)
    from .export.writer import masked_generator
    from .loading import LoadOptions, load_bundle

    bundle = load_bundle(str(source), LoadOptions(trust_pickle=trust_pickle, arch=arch))
    return with_sampling(masked_generator(bundle).eval(), bundle.g_spec)


def with_sampling(generator: nn.Module, spec: ArchSpec | None) -> nn.Module:
    """``generator`` with ``input_kind``, ``input_shape`` (per sample; None when unknown) and
    ``sample(n, seed=0)`` (outputs for seeded latents, noise-input generators only)."""
    from .generation import generator_input, sample

    try:
        kind, shape = generator_input(generator, spec)
    except InputError:
        kind, shape = getattr(generator, "input_kind", "noise"), None
    generator.input_kind, generator.input_shape = kind, shape
    generator.sample = functools.partial(sample, generator)
    return generator


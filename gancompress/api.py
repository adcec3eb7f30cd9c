"""Library entry points for users: ``load`` any gancompress export or checkpoint.

``gancompress.api.load(path)`` returns the generator as an ``nn.Module`` in eval mode from a
sparse, dense or shrunk export (``gancompress export``), from a project checkpoint (masks
applied) or from any SOURCE that ``gancompress inspect`` reads.
"""
from __future__ import annotations

import functools
from pathlib import Path

from torch import nn

from .archs import ArchSpec
from .errors import InputError
from .formats.export_file import build_exported, export_metadata, read_export
from .loading import LoadOptions, load_bundle


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
    bundle = load_bundle(str(source), LoadOptions(trust_pickle=trust_pickle, arch=arch))
    return with_sampling(bundle.masked_generator().eval(), bundle.g_spec)


def with_sampling(generator: nn.Module, spec: ArchSpec | None) -> nn.Module:
    """``generator`` with ``input_kind``, ``input_shape`` (per sample; None when unknown) and
    ``sample(n, seed=0)`` (outputs for seeded latents, noise-input generators only)."""
    from .generation import generator_input, sample

    try:
        kind, shape = generator_input(generator, spec)
    except InputError:
        kind, shape = getattr(generator, "input_kind", "noise"), None
    for name, value in (("input_kind", kind), ("input_shape", shape)):
        if getattr(generator, name, None) != value:  # a class may declare them (read-only properties)
            setattr(generator, name, value)
    generator.sample = functools.partial(sample, generator)
    return generator


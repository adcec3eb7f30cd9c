"""Library entry points for users: ``load`` any gancompress export or checkpoint.

``gancompress.api.load(path)`` returns the generator as an ``nn.Module`` in eval mode from a
sparse, dense or shrunk export (``gancompress export``), from a project checkpoint (masks
applied) or from any SOURCE that ``gancompress inspect`` reads.
"""
from __future__ import annotations

from pathlib import Path

from torch import nn

from .errors import InputError
from .formats.export_file import build_exported, export_metadata, read_export
from .loading import LoadOptions, load_bundle


def load(source: str | Path, *, arch: str | None = None, d_arch: str | None = None,
         trust_pickle: bool = False) -> nn.Module:
    """The generator in eval mode from any gancompress export, project checkpoint or SOURCE.

    Project checkpoints and other sources come back with their pruning masks applied.
    ``arch`` / ``d_arch`` name your own generator / discriminator (``module:Callable``) when the
    file records them (a module is imported only when named: importing runs its code).
    """
    path = Path(str(source)).expanduser()
    if path.suffix == ".onnx":
        raise InputError(f"{source} is an ONNX file; run it with onnxruntime (load() returns torch modules)")
    if export_metadata(path) is not None:
        return build_exported(read_export(path), str(source), arch)
    bundle = load_bundle(str(source), LoadOptions(trust_pickle=trust_pickle, arch=arch, d_arch=d_arch))
    return bundle.masked_generator().eval()

"""``export(config)``: load a SOURCE and write its deployable generator in the format the config names.

Only the generator is exported, with its pruning masks applied (``torch.where``, so pruned
weights are ``+0.0``) and in eval-mode form; each format's writer is in :mod:`.formats`.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from ..formats.checkpoint import GanBundle
from ..io_utils import check_writable
from ..loading import LoadOptions, load_bundle
from .config import ExportConfig, ExportResult, check_dtype
from .formats import EXPORT_FORMATS


def export(config: ExportConfig) -> ExportResult:
    """Load ``config.source`` and export its generator (the CLI's one library call)."""
    EXPORT_FORMATS.get(config.format)
    check_dtype(config)
    check_writable(Path(config.output), force=config.force, inputs=(Path(config.source),))
    options = LoadOptions(trust_pickle=config.trust_pickle, arch=config.arch, arch_kwargs=config.arch_kwargs)
    return export_bundle(load_bundle(config.source, options), config)


def export_bundle(bundle: GanBundle, config: ExportConfig) -> ExportResult:
    """Export an in-memory bundle's generator as ``config.format``."""
    fmt = EXPORT_FORMATS.get(config.format)
    check_dtype(config)
    if bundle.g_spec is None:
        raise InputError("this generator has no architecture spec (a whole pickled module); "
                         "export needs one: load it from a state dict or pass --arch")
    return fmt.write(bundle, config)

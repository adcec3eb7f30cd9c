"""The public Python surface: the same pipeline as the CLI, on ``nn.Module`` objects.

``load`` reads any gancompress export, project checkpoint or SOURCE. ``prune``, ``recover``,
``evaluate``, ``save`` and ``export`` take the user's own modules (a network defined in the
calling script works too) with keyword-only options whose defaults and validation are the
CLI's: each builds the same library config (:class:`~gancompress.prune.PruneConfig`,
:class:`~gancompress.finetune.config.FinetuneConfig`, :class:`~gancompress.evaluate.EvaluateConfig`,
:class:`~gancompress.export.ExportConfig`) and runs the same library function.

The file-based pipeline reads networks from project files. A module given here is written to a
temporary project file whose architecture is :func:`live`: a copy of that very module object,
kept in this process only (no class needs to be importable or re-constructible). Contract
attributes (docs/custom_networks.md) are read from the module as for ``--arch``.
"""
from __future__ import annotations

import copy
import functools
import tempfile
import uuid
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from .archs import ArchSpec
from .errors import InputError
from .finetune.defaults import DEFAULT_METHOD, DEFAULT_STEPS
from .formats.checkpoint import GanBundle, save_bundle
from .formats.export_file import build_exported, export_metadata, read_export
from .loading import LoadOptions, load_bundle

LIVE = "gancompress.api:live"
_LIVE: dict[str, nn.Module] = {}


def load(source: str | Path, *, arch: str | None = None, d_arch: str | None = None,
         trust_pickle: bool = False) -> nn.Module:
    """The generator in eval mode from any gancompress export, project checkpoint or SOURCE.

    Project checkpoints and other sources come back with their pruning masks applied; an ONNX file
    comes back as a module that runs it with onnxruntime (``pip install onnxruntime``).
    ``arch`` / ``d_arch`` name your own generator / discriminator (``module:Callable``) when the
    file records them (a module is imported only when named: importing runs its code).
    """
    path = Path(str(source)).expanduser()
    if export_metadata(path) is not None:
        exported = read_export(path)
        return with_sampling(build_exported(exported, str(source), arch), exported.spec)
    bundle = load_bundle(str(source), LoadOptions(trust_pickle=trust_pickle, arch=arch, d_arch=d_arch))
    generator = bundle.masked_generator() if bundle.masks else bundle.generator  # an ONNX session cannot be copied
    return with_sampling(generator.eval(), bundle.g_spec)


def with_sampling(generator: nn.Module, spec: "ArchSpec | None") -> nn.Module:
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


def prune(module: nn.Module, *, sparsity: float, granularity: str = "element", scope: str = "layer",
          block: str | tuple[int, int] = "4x4", nm: str | tuple[int, int] = "2:4", include: tuple[str, ...] = (),
          exclude: tuple[str, ...] = (), prune_first_last: bool = False) -> nn.Module:
    """A copy of ``module`` with the smallest-magnitude weights zeroed (``gancompress prune``).

    The zeros are the pruning: :func:`recover` keeps them zero, :func:`save` records them as masks.
    """
    from .prune import PruneConfig, apply_masks, compute_masks

    config = PruneConfig(sparsity, granularity=granularity, scope=scope, block=block, nm=nm, include=tuple(include),
                         exclude=tuple(exclude), prune_first_last=prune_first_last)
    model = _module(module, "module")
    apply_masks(model, compute_masks(model, config))
    return model


def recover(student: nn.Module, *, teacher: nn.Module, discriminator: nn.Module | None = None,
            data: Any = None, inputs: Any = None, method: str = DEFAULT_METHOD, steps: int = DEFAULT_STEPS,
            batch_size: int | None = None, seed: int = 0, device: str = "auto",
            on_event: Callable | None = None, **options: Any) -> nn.Module:
    """The pruned ``student`` trained back towards the dense ``teacher`` (``gancompress finetune``).

    ``data``: real images as a tensor ``(N, C, H, W)`` in the generator's output range, a
    ``Dataset`` or ``DataLoader`` of images or ``(image, label)`` pairs, or a folder; ``inputs``: an
    image-to-image generator's input images, in the same forms (a super-resolution generator's are
    made by downscaling ``data``). ``options``:
    the other finetune settings by their CLI names (``lr_g``, ``mu``, ``adv_weight``, ``loss``, ...).
    ``method`` ``auto`` (the default) runs hybrid when both ``discriminator`` and ``data`` are given, else distill;
    ``batch_size`` None: the method's own (hybrid 128, the others 64).
    Returns a trained copy; the student's zeros stay zero.
    """
    from .finetune import run_finetune
    from .finetune.config import FinetuneConfig
    from .prune import current_masks

    student, teacher = _module(student, "student"), _module(teacher, "teacher")
    with tempfile.TemporaryDirectory(prefix="gancompress-") as tmp:
        folder = Path(tmp)
        disc = _module(discriminator, "discriminator", "discriminator") if discriminator is not None else None
        dense = _write(folder / "teacher.safetensors", teacher, disc)
        pruned = _write(folder / "student.safetensors", student, None, current_masks(student), {"source": str(dense)})
        real = _data_folder(data, folder / "data", _value_range(teacher))
        sources = _data_folder(inputs, folder / "inputs", _value_range(teacher))
        config = FinetuneConfig.from_options(
            source=str(pruned), output=folder / "recovered.safetensors", data=real, inputs=sources, teacher=str(dense),
            discriminator=str(dense) if discriminator is not None else None, method=method, steps=steps,
            batch_size=batch_size, seed=seed, device=device, arch=LIVE, d_arch=LIVE if discriminator is not None else None,
            log_every=0, sample_every=0, save_every=0, **options)
        run_finetune(config, on_event=on_event)
        return _read_generator(folder / "recovered.safetensors", student)


def evaluate(generator: nn.Module, *, data: Any = None, reference: nn.Module | None = None, fid: bool = False,
             kid: bool = False, isc: bool = False, prc: bool = False, latency: bool = False,
             extractor: str | None = None, num_samples: int = 2000, batch_size: int = 64, seed: int = 0,
             device: str = "auto", samples: str | Path | None = None, **options: Any) -> dict[str, Any]:
    """Quality, fidelity to ``reference`` (the dense model) and cost (``gancompress evaluate``); the JSON
    report as a dict. ``data``: real images as for :func:`recover`; ``samples``: a PNG grid to write."""
    from .evaluate import EvaluateConfig, evaluate as run_evaluate

    with tempfile.TemporaryDirectory(prefix="gancompress-") as tmp:
        folder = Path(tmp)
        from .evaluate.config import LatencyConfig

        sources = [str(_write(folder / "model.safetensors", _module(generator, "generator"), None))]
        references = [str(_write(folder / "reference.safetensors", _module(reference, "reference"), None))
                      ] if reference is not None else []
        real = _data_folder(data, folder / "data", _value_range(generator))
        config = EvaluateConfig.from_options(
            sources=sources, references=references, real=real, fid=fid, kid=kid, isc=isc, prc=prc,
            latency=LatencyConfig() if latency else None, extractor=extractor, num_samples=num_samples,
            batch_size=batch_size, seed=seed, device=device, samples_png=Path(samples) if samples else None,
            load=LoadOptions(arch=LIVE), **options)
        return run_evaluate(config).to_json()


def save(generator: nn.Module, path: str | Path, *, discriminator: nn.Module | None = None, arch: str | None = None,
         arch_kwargs: dict[str, Any] | None = None, d_arch: str | None = None,
         d_arch_kwargs: dict[str, Any] | None = None, force: bool = False) -> Path:
    """Write a project checkpoint (the generator's zeros as masks, the discriminator beside it) that every
    command reads with ``--arch ARCH`` (default: the generator's class as ``module:Class``)."""
    from .prune import current_masks

    generator = _module(generator, "generator")
    bundle = GanBundle(generator, _spec(generator, arch, arch_kwargs), masks=current_masks(generator))
    if discriminator is not None:
        bundle.discriminator = _module(discriminator, "discriminator", "discriminator")
        bundle.d_spec = _spec(bundle.discriminator, d_arch, d_arch_kwargs, "discriminator")
    return save_bundle(bundle, path, force=force)


def export(generator: nn.Module, path: str | Path, *, format: str = "sparse", dtype: str | None = None,
           arch: str | None = None, arch_kwargs: dict[str, Any] | None = None, force: bool = False) -> dict[str, Any]:
    """Write the deployable generator (``gancompress export``): ``sparse``, ``dense``, ``shrunk`` or ``onnx``."""
    from .export import ExportConfig
    from .export.run import export_bundle
    from .prune import current_masks

    generator = _module(generator, "generator")
    bundle = GanBundle(generator, _spec(generator, arch, arch_kwargs), masks=current_masks(generator),
                       source="<in memory>")
    return export_bundle(bundle, ExportConfig("<in memory>", Path(path), format=format, dtype=dtype,
                                              force=force)).to_dict()


def live(key: str) -> nn.Module:
    """The architecture of a module handed to this API: a copy of it (this process only)."""
    if key not in _LIVE:
        raise InputError("this file was written by gancompress' Python API for a module of another process; "
                         "read it with gancompress.load(path, arch='yourmodule:YourClass')")
    return copy.deepcopy(_LIVE[key])


def _write(path: Path, generator: nn.Module, discriminator: nn.Module | None,
           masks: dict[str, torch.Tensor] | None = None, pruning: dict[str, Any] | None = None) -> Path:
    bundle = GanBundle(generator, _live_spec(generator), masks=masks or {}, source=str(path))
    if discriminator is not None:
        bundle.discriminator, bundle.d_spec = discriminator, _live_spec(discriminator, "discriminator")
    if pruning is not None:
        bundle.meta["pruning"] = pruning
    return save_bundle(bundle, path, force=True)


def _live_spec(module: nn.Module, role: str = "generator") -> ArchSpec:
    key = uuid.uuid4().hex
    _LIVE[key] = module
    fields: dict[str, Any] = {"target": LIVE, "kwargs": {"key": key}}
    return ArchSpec("custom", {**fields, "role": "discriminator"} if role == "discriminator" else fields)


def _spec(module: nn.Module, arch: str | None, kwargs: dict[str, Any] | None, role: str = "generator") -> ArchSpec:
    target = arch or f"{type(module).__module__}:{type(module).__qualname__}"
    options = LoadOptions(arch=target, arch_kwargs=kwargs) if role == "generator" else \
        LoadOptions(d_arch=target, d_arch_kwargs=kwargs)
    return options.custom_spec(role)  # type: ignore[return-value]


def _module(value: Any, what: str, role: str = "generator") -> nn.Module:
    """A copy of the user's module with its contract checked and applied (docs/custom_networks.md)."""
    from .archs.contract import apply_contract

    if not isinstance(value, nn.Module):
        raise InputError(f"{what} must be a torch.nn.Module, got {type(value).__name__}")
    return apply_contract(copy.deepcopy(value), {}, role, f"the {what} ({type(value).__qualname__})")


def _value_range(generator: nn.Module) -> tuple[float, float]:
    low, high = getattr(generator, "output_range", (-1.0, 1.0))
    return float(low), float(high)


def _read_generator(path: Path, like: nn.Module) -> nn.Module:
    from safetensors.torch import load_file

    tensors = load_file(str(path))
    model = copy.deepcopy(like)
    model.load_state_dict({k[2:]: v for k, v in tensors.items() if k.startswith("G.")}, strict=True)
    return model.eval()


def _data_folder(data: Any, folder: Path, value_range: tuple[float, float]) -> str | None:
    """``data`` as a folder the pipeline reads: a path as it is; images (tensor, Dataset, DataLoader) written
    as PNG files, in one sub-folder per class when they come with labels (8 bits per channel, as FID sees them)."""
    if data is None or isinstance(data, (str, Path)):
        return None if data is None else str(data)
    images, labels = _images_and_labels(data)
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise InputError(f"data must be images (N, C, H, W) with 1 or 3 channels, got shape {tuple(images.shape)}")
    from PIL import Image

    lo, hi = value_range
    pixels = ((images.float() - lo) / (hi - lo) * 255).round().clamp(0, 255).to(torch.uint8)
    for i, image in enumerate(pixels):
        sub = folder / (f"class{int(labels[i]):04d}" if labels is not None else "")
        sub.mkdir(parents=True, exist_ok=True)
        array = image.permute(1, 2, 0).numpy()
        Image.fromarray(array[..., 0] if array.shape[2] == 1 else array).save(sub / f"{i:06d}.png")
    return str(folder)


def _images_and_labels(data: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    if isinstance(data, torch.Tensor):
        return data.detach().cpu(), None
    batches = data if isinstance(data, torch.utils.data.DataLoader) else (data[i] for i in range(len(data)))
    images, labels = [], []
    for item in batches:
        x, y = (item[0], item[1]) if isinstance(item, (tuple, list)) else (item, None)
        x = torch.as_tensor(x)
        images.append(x if isinstance(data, torch.utils.data.DataLoader) else x[None])
        if y is not None:
            labels.append(torch.as_tensor(y).reshape(-1))
    if not images:
        raise InputError("data holds no images")
    return torch.cat(images).cpu(), (torch.cat(labels).cpu() if labels else None)

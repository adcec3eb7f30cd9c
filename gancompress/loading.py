"""From a SOURCE string to a :class:`~gancompress.checkpoint.GanBundle`.

Finds the state dicts inside whatever a checkpoint holds (plain state dicts, dicts of
them, ``params_ema``/``params`` wrappers, Lightning ``state_dict`` with prefixes,
lightweight-gan's ``{"GAN": ...}``, directories of per-network files, project-format
files), recognises the generator and discriminator, and builds them.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from .archs import ARCHITECTURES, ArchSpec, build, detect, load_into, parse_spec
from .archs.base import build_detected
from .archs.detection import discriminator_probes, output_shape_of, try_architecture
from .formats.checkpoint import GanBundle, bundle_from_tensors, is_project_file
from .errors import InputError, NetworkMismatch
from .registry import unknown_choice
from .sources import RawFile, checkpoint_files, read_file, read_json, resolve

PREFIXES = {
    "G.": "G", "D.": "D", "GE.": "GE", "generator.": "generator", "discriminator.": "discriminator",
    "netG.": "netG", "netD.": "netD", "gen.": "gen", "disc.": "disc",
}
_G_HINTS = ("params_ema", "g_ema", "netg", "generator", "gen", "g_a", "g", "params", "ge", "g_b")


@dataclass(frozen=True)
class LoadOptions:
    """How to read a model: the SOURCE, pickle trust, and optional user architectures for G and D.

    ``arch`` / ``d_arch`` name ``module.path:Callable``; importing that module runs its code, so
    a checkpoint that records one is rebuilt only when the same name is passed again. The same
    options (with another ``source``: :meth:`for_source`) read a run's teacher and discriminator.
    """

    source: str | None = None
    trust_pickle: bool = False
    arch: str | None = None
    arch_kwargs: dict[str, Any] | None = None
    direction: str = "AtoB"  # CycleGAN directories: AtoB loads G_A/D_A, BtoA loads G_B/D_B
    d_arch: str | None = None
    d_arch_kwargs: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.direction not in ("AtoB", "BtoA"):
            raise unknown_choice("direction", self.direction, ("AtoB", "BtoA"))
        for option, target, kwargs in (("--arch", self.arch, self.arch_kwargs), ("--d-arch", self.d_arch, self.d_arch_kwargs)):
            if target is not None:
                from .archs.custom import check_arch_target

                check_arch_target(target, option)
            if kwargs is not None and target is None:
                raise InputError(f"{option}-kwargs needs {option} module:Callable")
            if kwargs is not None and not isinstance(kwargs, dict):
                raise InputError(f"{option}-kwargs must be a dict (a JSON object), got {type(kwargs).__name__}")

    def for_source(self, source: str) -> LoadOptions:
        """These options for another SOURCE (a teacher, a discriminator file)."""
        return replace(self, source=source)

    def like(self, recorded: ArchSpec | None) -> LoadOptions:
        """These options, with the keyword arguments a file recorded for the same ``--arch`` when none are given
        (a pruned file's dense source, a reference model: the same network, saved before the tool saw it)."""
        if recorded is None or recorded.name != "custom" or self.arch_kwargs is not None:
            return self
        if recorded.kwargs.get("target") != self.arch:
            return self
        return replace(self, arch_kwargs=dict(recorded.kwargs.get("kwargs") or {}))

    def custom_spec(self, role: str) -> ArchSpec | None:
        """The recorded spec of the user's architecture for ``role``, None when not given."""
        target, kwargs = (self.arch, self.arch_kwargs) if role == "generator" else (self.d_arch, self.d_arch_kwargs)
        if target is None:
            return None
        fields: dict[str, Any] = {"target": target, "kwargs": dict(kwargs or {})}
        if role == "discriminator":
            fields["role"] = "discriminator"
        return ArchSpec("custom", fields)


def _options(source: str | LoadOptions, options: LoadOptions | None) -> LoadOptions:
    if isinstance(source, LoadOptions):
        return source
    return (options or LoadOptions()).for_source(str(source))


class DiscriminatorOnly(InputError):
    """SOURCE holds a recognised discriminator and no generator (``inspect`` can still show it)."""

    def __init__(self, spec: ArchSpec, state_dict: Mapping[str, torch.Tensor]) -> None:
        super().__init__(
            f"this is a discriminator ({spec.name}, {len(state_dict)} keys), not a generator; give the generator too "
            "(its checkpoint, or a directory holding both files)"
        )
        self.spec, self.state_dict = spec, state_dict


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(isinstance(v, torch.Tensor) for v in obj.values())


# What nn.DataParallel / DistributedDataParallel ("module.") and torch.compile ("_orig_mod.") put in front
# of every key of the network they wrap; load_state_dict on the bare network needs them gone.
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")


def _unwrap_keys(sd: Mapping[str, torch.Tensor]) -> Mapping[str, torch.Tensor]:
    """``sd`` without a wrapper prefix that every one of its keys carries (repeated: DDP around compile)."""
    while True:
        prefix = next((p for p in _WRAPPER_PREFIXES if all(k.startswith(p) for k in sd)), None)
        if prefix is None:
            return sd
        sd = {k[len(prefix):]: v for k, v in sd.items()}


def _split_prefixes(sd: Mapping[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]] | None:
    groups: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in sd.items():
        prefix = next((p for p in PREFIXES if key.startswith(p)), None)
        if prefix is None:
            return None
        groups.setdefault(PREFIXES[prefix], {})[key[len(prefix):]] = value
    return groups if len(groups) > 1 or "generator" in groups or "discriminator" in groups else None


def state_dicts(obj: Any, name: str = "") -> dict[str, Any]:
    """Named state dicts (or whole modules) found in a checkpoint object."""
    if isinstance(obj, nn.Module):
        return {name or "model": obj}
    if _is_state_dict(obj):
        obj = _unwrap_keys(obj)
        return _split_prefixes(obj) or {name or "model": dict(obj)}
    if not isinstance(obj, Mapping):
        return {}
    for wrapper in ("params_ema", "params"):
        if _is_state_dict(obj.get(wrapper)):
            return {wrapper: dict(obj[wrapper])}
    if _is_state_dict(obj.get("state_dict")):
        return state_dicts(obj["state_dict"], name)
    found: dict[str, Any] = {}
    for key, value in obj.items():
        if isinstance(value, (Mapping, nn.Module)):
            found.update(state_dicts(value, str(key)))
    return found


def _hint_rank(name: str) -> int:
    low = name.lower().rsplit("net_", 1)[-1]
    return _G_HINTS.index(low) if low in _G_HINTS else len(_G_HINTS)


def _role_of(sd: Mapping[str, torch.Tensor]) -> tuple[str, ArchSpec] | None:
    for role in ("generator", "discriminator"):
        try:
            return role, detect(sd, role)  # type: ignore[arg-type]
        except InputError:
            continue
    return None


def _collect(raw_files: list[RawFile]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for raw in raw_files:
        for key, value in state_dicts(raw.content, raw.path.stem).items():
            found[key if key not in found else f"{raw.path.stem}.{key}"] = value
    if not found:
        names = ", ".join(str(r.path.name) for r in raw_files)
        raise InputError(f"{names}: no state dict or module inside; is this a model checkpoint?")
    return found


def _custom_module(found: dict[str, Any], spec: ArchSpec, exclude: set[str]) -> tuple[str, nn.Module]:
    """Build the user's network and load the state dict in ``found`` that shares most keys with it."""
    module = build(spec)
    option = "--d-arch" if spec.kwargs.get("role") == "discriminator" else "--arch"
    expected = set(module.state_dict())
    # a whole pickled module (read with --trust-pickle) is taken by its state dict: the user's class rebuilds it
    candidates = [(k, v.state_dict() if isinstance(v, nn.Module) else v) for k, v in found.items() if k not in exclude]
    if not candidates:
        raise InputError(f"{option} {spec.kwargs['target']}: the checkpoint holds no other state dict for it"
                         + ("; give the discriminator's own file with --discriminator FILE" if option == "--d-arch" else ""))
    ranked = sorted(candidates, key=lambda kv: (-len(expected & set(kv[1])) if isinstance(kv[1], Mapping) else 1,
                                                _hint_rank(kv[0]) * (1 if option == "--arch" else -1)))
    name, sd = ranked[0]
    load_into(module, sd, f"{option} {spec.kwargs['target']} (module {spec.kwargs['target'].split(':')[0]})")
    return name, module.eval()


def _custom_generator(found: dict[str, Any], options: LoadOptions, config: dict | None) -> tuple[GanBundle, str]:
    spec = options.custom_spec("generator")
    if options.arch_kwargs is None and config:
        spec = ArchSpec("custom", {"target": options.arch, "kwargs": dict(config)})
    name, module = _custom_module(found, spec, set())
    bundle = GanBundle(module, spec)
    if options.d_arch is None:
        g_in = getattr(module, "input_shape", None)
        g_out = output_shape_of(module, tuple(g_in)) if g_in is not None else None
        probes = discriminator_probes(tuple(g_in), g_out, getattr(module, "input_kind", "noise")) if g_out else None
        _attach_discriminator(bundle, {k: v for k, v in found.items() if k != name}, probes)
    return bundle, name


def _generator_entry(found: dict[str, Any], generator: nn.Module) -> str:
    """The name in ``found`` the generator was loaded from (the one sharing most of its keys)."""
    keys = set(generator.state_dict())
    return max(found, key=lambda k: len(keys & set(found[k])) if isinstance(found[k], Mapping) else -1)


def attach_custom_discriminator(bundle: GanBundle, found: dict[str, Any], options: LoadOptions, exclude: set[str]) -> None:
    """``--d-arch``: build the user's discriminator from a state dict in ``found`` other than ``exclude``."""
    spec = options.custom_spec("discriminator")
    _, module = _custom_module(found, spec, exclude)
    bundle.discriminator, bundle.d_spec = module, spec


def load_discriminator(options: LoadOptions, *, probes: list[tuple[int, ...]] | None = None
                       ) -> tuple[nn.Module, ArchSpec | None]:
    """A discriminator from its own SOURCE (``--discriminator FILE``): the user's ``--d-arch``, a file holding
    only one, or the one beside a generator. ``probes`` (per-sample shapes of what it must judge, e.g. from
    :func:`~gancompress.archs.detection.discriminator_probes`) confirm a lone built-in discriminator fits."""
    source = str(options.source)
    if options.d_arch is not None:
        path = resolve(source)
        raw_files, _ = _raw_files(path, options)
        if len(raw_files) == 1 and is_project_file(raw_files[0].metadata):
            bundle = _load_source(options)[0]
        else:
            found = _collect(raw_files)
            module = _custom_module(found, options.custom_spec("discriminator"), set())[1]
            return module, options.custom_spec("discriminator")
    else:
        try:
            bundle = _load_source(options)[0]
        except DiscriminatorOnly as only:
            spec = detect(only.state_dict, "discriminator", probes)  # raises when it cannot judge those images
            return build_detected(spec, only.state_dict, "discriminator"), spec
    if bundle.discriminator is None:
        raise InputError(f"{source}: no discriminator found in it; for your own discriminator class pass "
                         "--d-arch module:Callable (and --d-arch-kwargs JSON)")
    return bundle.discriminator, bundle.d_spec


def _attach_discriminator(bundle: GanBundle, rest: dict[str, Any], probes: list[tuple[int, ...]] | None) -> None:
    """The first state dict that is a known discriminator able to judge the generator's output."""
    for _, sd in sorted(rest.items(), key=lambda kv: -_hint_rank(kv[0])):
        if isinstance(sd, Mapping):
            try:
                spec = detect(sd, "discriminator", probes)
            except InputError:
                continue
            bundle.discriminator, bundle.d_spec = build_detected(spec, sd, "discriminator"), spec
            return


def _builtin_bundle(found: dict[str, Any]) -> GanBundle:
    modules = [(k, v) for k, v in found.items() if isinstance(v, nn.Module)]
    if modules:
        name, module = sorted(modules, key=lambda kv: _hint_rank(kv[0]))[0]
        return GanBundle(module.eval(), None)
    generators: list[tuple[int, str, ArchSpec, Mapping, tuple[int, ...] | None]] = []
    for name, sd in found.items():
        match = _generator_match(sd)
        if match is not None:
            generators.append((_hint_rank(name), name, match[0], sd, match[1]))
    if not generators:
        _raise_without_generator(found)
    _, name, spec, sd, g_out = sorted(generators, key=lambda g: g[0])[0]
    bundle = GanBundle(build_detected(spec, sd, "generator"), spec)
    arch = ARCHITECTURES.get(spec.name)
    probes = discriminator_probes(arch.input_shape_of(spec.kwargs), g_out, arch.input_kind) if g_out else None
    _attach_discriminator(bundle, {k: v for k, v in found.items() if k != name}, probes)
    return bundle


def _raise_without_generator(found: dict[str, Any]) -> None:
    """No generator: discriminators alone are named as such; anything else gets detect()'s report."""
    dicts = [v for v in found.values() if isinstance(v, Mapping)]
    specs = []
    for sd in dicts:
        try:
            specs.append((detect(sd, "discriminator"), sd))
        except InputError:
            break
    if specs and len(specs) == len(dicts):
        raise DiscriminatorOnly(*specs[0])
    detect(max(dicts, key=len), "generator")  # raises, saying what was tried


def _generator_match(sd: Any) -> tuple[ArchSpec, tuple[int, ...] | None] | None:
    """(spec, per-sample output shape) of the built-in generator ``sd`` is, or None."""
    if not isinstance(sd, Mapping):
        return None
    for _, arch in ARCHITECTURES.items():
        if arch.role == "generator" and arch.detectable:
            trial = try_architecture(arch, sd)
            if trial.spec is not None:
                return trial.spec, trial.output_shape
    return None


def _check_custom_allowed(metadata: dict[str, str], options: LoadOptions, source: str) -> None:
    """A project file naming a user architecture is rebuilt only when the same --arch/--d-arch is given."""
    for key, option, given in (("g_arch", "--arch", options.arch), ("d_arch", "--d-arch", options.d_arch)):
        if key not in metadata:
            continue
        spec = parse_spec(metadata[key], source, key)
        target = spec.kwargs.get("target") if spec.name == "custom" else None
        if given and not target:
            role = "discriminator" if key == "d_arch" else "generator"
            raise NetworkMismatch(f"{option} {given} does not apply: {source} records the built-in {role} {spec.name}; "
                             f"drop {option}")
        if target and given != target:
            got = f" (got {option} {given})" if given else ""
            raise NetworkMismatch(
                f"{source} uses your own {'discriminator' if key == 'd_arch' else 'generator'} {target}; pass "
                f"{option} {target} to load it{got} (the tool imports a module only when you name it: importing runs its code)"
            )


def _raw_files(path: Path, options: LoadOptions) -> tuple[list[RawFile], dict | None]:
    if path.is_file():
        return [read_file(path, trust_pickle=options.trust_pickle)], None
    config = read_json(path / "config.json") if (path / "config.json").is_file() else None
    files = checkpoint_files(path)
    return [read_file(p, trust_pickle=options.trust_pickle) for p in files], config


def load_bundle(source: str | LoadOptions, options: LoadOptions | None = None) -> GanBundle:
    """Load a model into a :class:`GanBundle` (generator + optional discriminator).

    ``source`` is a :class:`LoadOptions` (its ``source`` is read), or a SOURCE string read with
    ``options`` (default: built-in architectures, no pickles).
    """
    return _load_source(_options(source, options))[0]


def load_with_partner(source: str | LoadOptions,
                      options: LoadOptions | None = None) -> tuple[GanBundle, nn.Module | None]:
    """Like :func:`load_bundle`, plus CycleGAN's opposite-direction generator when SOURCE holds it.

    A CycleGAN directory (``latest_net_G_A.pth``, ``latest_net_G_B.pth``, ``latest_net_D_A.pth``,
    ...) or file with both generators gives ``G_A`` with ``D_A`` and partner ``G_B`` for
    ``direction="AtoB"`` and the reverse for ``"BtoA"``; anything else gives ``None``.
    """
    return _load_source(_options(source, options), partner=True)


_CYCLE_SWAP = {"g_a": "g_b", "g_b": "g_a", "d_a": "d_b", "d_b": "d_a"}


def _cycle_role(name: str) -> str | None:
    low = name.lower().rsplit("net_", 1)[-1]
    return low if low in _CYCLE_SWAP else None


def _swap_directions(found: dict[str, Any]) -> dict[str, Any]:
    """BtoA: rename G_A <-> G_B and D_A <-> D_B so the usual ranking picks the B->A networks."""
    out = {}
    for name, value in found.items():
        role = _cycle_role(name)
        out[name[: len(name) - len(role)] + _CYCLE_SWAP[role].upper() if role else name] = value
    return dict(sorted(out.items()))  # D_A before D_B, as for files read in name order


def _partner(found: dict[str, Any]) -> nn.Module | None:
    for name, sd in found.items():
        if _cycle_role(name) == "g_b":
            if isinstance(sd, nn.Module):
                return sd.eval()
            match = _generator_match(sd)
            if match is not None:
                return build_detected(match[0], sd, "generator")
    return None


def _load_source(options: LoadOptions, partner: bool = False) -> tuple[GanBundle, nn.Module | None]:
    if not options.source:
        raise InputError("no SOURCE given: name a checkpoint file, a directory, hf://OWNER/REPO or builtin:NAME")
    source = str(options.source)
    path = resolve(source)
    if path.is_file() and path.suffix.lower() == ".onnx":
        from .formats.onnx import load_onnx_bundle

        return load_onnx_bundle(path, source), None
    raw_files, config = _raw_files(path, options)
    if len(raw_files) == 1 and is_project_file(raw_files[0].metadata):
        _check_custom_allowed(raw_files[0].metadata, options, source)
        return bundle_from_tensors(raw_files[0].content, raw_files[0].metadata, source), None
    if len(raw_files) == 1 and raw_files[0].metadata.get("format", "").startswith("gancompress-"):
        return _exported_bundle(raw_files[0].path, source, options), None
    found = _collect(raw_files)
    if options.direction == "BtoA":
        found = _swap_directions(found)
    if options.arch:
        bundle, g_name = _custom_generator(found, options, config)
    else:
        bundle = _builtin_bundle(found)
        g_name = _generator_entry(found, bundle.generator)
        _stored_latent_avg(bundle, raw_files)
    if options.d_arch and set(found) - {g_name}:  # a generator-only file: the D comes from --discriminator
        attach_custom_discriminator(bundle, found, options, {g_name})
    bundle.source = source
    bundle.meta.setdefault("provenance", {"source": source})
    if options.direction == "BtoA" and any(_cycle_role(k) for k in found):
        bundle.meta["provenance"]["direction"] = "BtoA"
    return bundle, (_partner(found) if partner and not options.arch else None)


def _stored_latent_avg(bundle: GanBundle, raw_files: list[RawFile]) -> None:
    """A ``latent_avg`` tensor beside the state dicts (rosinality's StyleGAN2 layout: the mean w) goes to a
    generator that can use it (``use_latent_avg``); its spec then records that the state dict holds it."""
    use = getattr(bundle.generator, "use_latent_avg", None)
    content = raw_files[0].content if len(raw_files) == 1 else None
    if use is None or bundle.g_spec is None or not isinstance(content, Mapping):
        return
    if use(content.get("latent_avg")):
        bundle.g_spec = ArchSpec(bundle.g_spec.name, {**bundle.g_spec.kwargs, "latent_avg": True})


def _exported_bundle(path: Path, source: str, options: LoadOptions) -> GanBundle:
    """A deployable export (sparse/dense/shrunk): the generator only, weights decoded."""
    from .formats.export_file import build_exported, read_export

    from .formats.precision import run_in_weight_dtype

    exported = read_export(path)
    module = run_in_weight_dtype(build_exported(exported, source, options.arch))
    return GanBundle(module, exported.spec, source=source, meta={"provenance": {"source": source, "export": exported.metadata.get("format")}})


def parse_arch_kwargs(text: str | None, option: str = "--arch-kwargs") -> dict[str, Any] | None:
    """The JSON object given to ``option`` (``--arch-kwargs`` or ``--d-arch-kwargs``)."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{option} is not valid JSON ({exc.msg}); e.g. {option} '{{\"nz\": 64}}'") from None
    if not isinstance(value, dict):
        raise InputError(f"{option} must be a JSON object, e.g. '{{\"nz\": 64}}'")
    return value

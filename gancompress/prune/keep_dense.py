"""Which prunable layers stay dense: the ``--keep-dense`` policy.

A policy is a comma-separated list of tokens:

``auto``   (the default) layers that hold under ``SMALL_SHARE`` (2%) of the prunable weights AND
           read the model's input or feed its output (the first and last prunable layers in
           module order). They cost little to keep and pruning them hurts most. ``auto`` yields
           when the target needs them: if the sparsity cannot be reached with them dense, they
           are pruned too (the report says so).
``first``  the first prunable layer; ``last`` the last one.
``none``   nothing stays dense (alone only).
other      an ``fnmatch`` glob on module names (``net.0``, ``*.to_rgb``).

``--exclude`` globs keep layers dense as well, and with ``--include`` every layer it does not
match stays dense; both are reported with their reason.
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from ..errors import InputError

SMALL_SHARE = 0.02
WORDS = ("auto", "first", "last", "none")


def parse_keep_dense(value: str | tuple[str, ...] | list[str] | None) -> tuple[str, ...]:
    """``"first,last"`` or ``("first", "last")`` -> a tuple of tokens (``("auto",)`` for None)."""
    if value is None:
        return ("auto",)
    parts = value.split(",") if isinstance(value, str) else list(value)
    if not all(isinstance(p, str) for p in parts):
        raise InputError(f"--keep-dense takes words and globs, got {value!r}")
    tokens = tuple(p.strip() for p in parts if p.strip())
    if not tokens:
        raise InputError("--keep-dense is empty; give auto, first, last, none, or module-name globs (e.g. first,net.3)")
    if "none" in tokens and len(tokens) > 1:
        raise InputError(f"--keep-dense {','.join(tokens)!r}: 'none' cannot be combined with other layers")
    return tokens


@dataclass(frozen=True)
class Layer:
    """What the policy needs to know of one prunable layer (in module order)."""

    name: str
    weights: int
    by_default: bool = True  # False: the module says ``prune_by_default = False`` (StyleGAN2's ToRGB, mapping)


@dataclass(frozen=True)
class DenseChoice:
    """The policy's answer: ``dense`` maps a layer name to why it stays dense; ``optional`` are the
    ``auto`` layers that may still be pruned when the target needs them."""

    dense: dict[str, str]
    optional: tuple[str, ...]

    def without_optional(self) -> "DenseChoice":
        return DenseChoice({n: r for n, r in self.dense.items() if n not in self.optional}, ())


def _auto(layers: list[Layer]) -> dict[str, str]:
    total = sum(layer.weights for layer in layers) or 1
    ends = {layers[0].name: "reads the input", layers[-1].name: "feeds the output"}
    return {n: f"auto: {why}, {100 * w / total:.2g}% of the weights"
            for n, w in ((layer.name, layer.weights) for layer in layers)
            if n in ends and w / total < SMALL_SHARE for why in (ends[n],)}


def choose_dense(layers: list[Layer], tokens: tuple[str, ...], include: tuple[str, ...] = (),
                 exclude: tuple[str, ...] = ()) -> DenseChoice:
    """Apply the policy ``tokens`` (see :func:`parse_keep_dense`) and ``include``/``exclude`` globs."""
    if not layers:
        raise InputError("the model has no Conv/ConvTranspose/Linear layer to prune")
    names = [layer.name for layer in layers]
    dense: dict[str, str] = {}
    auto = _auto(layers) if "auto" in tokens else {}
    for token in tokens:
        if token == "first":
            dense.setdefault(names[0], "first layer")
        elif token == "last":
            dense.setdefault(names[-1], "last layer")
        elif token not in WORDS:
            hits = [n for n in names if fnmatch.fnmatchcase(n, token)]
            if not hits:
                raise InputError(f"--keep-dense {token!r} matches no prunable layer; prunable layers are: "
                                 f"{', '.join(names[:12])}{' ...' if len(names) > 12 else ''}")
            dense.update({n: f"--keep-dense {token}" for n in hits if n not in dense})
    for layer in layers:
        n = layer.name
        if include and not any(fnmatch.fnmatchcase(n, g) for g in include):
            dense.setdefault(n, "not matched by --include")
        elif not include and not layer.by_default:
            dense.setdefault(n, "dense by default (--include names it to prune it)")
        elif any(fnmatch.fnmatchcase(n, g) for g in exclude):
            dense.setdefault(n, "--exclude")
    optional = tuple(n for n in auto if n not in dense)
    dense.update({n: auto[n] for n in optional})
    if len(dense) == len(names) and not optional:
        raise InputError(f"no layer left to prune: all {len(names)} prunable layers stay dense "
                         f"({', '.join(f'{n}: {r}' for n, r in list(dense.items())[:4])}); relax --keep-dense/--include/--exclude")
    return DenseChoice(dense, optional)


__all__ = ["SMALL_SHARE", "WORDS", "Layer", "DenseChoice", "parse_keep_dense", "choose_dense"]

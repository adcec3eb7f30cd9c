"""Intermediate-feature distillation with learned 1x1 adapters (as in GAN Compression, Li et al. 2020).

Taps are chosen from the generator's structure alone, so any architecture works: the outputs of
up to :data:`TAPS` evenly spaced convolution layers (``Conv*``/``ConvTranspose*``, the modules
pruning works on), the output layer excluded (the L1 to the teacher already covers it). The same
named modules of the teacher G_O and the student G_C are hooked during the step's one forward
pass of each. Per tap a learned channel mixer (a 1x1 convolution: ``out[:, o] = sum_c A[o, c]
f[:, c] + b[o]``, identity-initialised) maps the student's feature to the teacher's, and

    loss = mean over taps of  mean((A(f_C) - f_O)^2) / mean(f_O^2)

(normalised, so taps of any scale weigh alike). The adapters train with G_C's optimiser and
are never part of the exported generator; their weights ride in the resume state.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import Tensor, nn

from ..errors import InputError
from ..layer_table import CONV, CONV_TRANSPOSE
from .distributed import global_means

TAPS = 3  # feature maps distilled per generator (fewer when it has fewer convolution layers)


class ChannelAdapter(nn.Module):
    """A 1x1 convolution over dim 1 of a feature map of any rank, initialised to the identity."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.eye(c_out, c_in))
        self.bias = nn.Parameter(torch.zeros(c_out))

    def forward(self, f: Tensor) -> Tensor:
        return (f.movedim(1, -1) @ self.weight.t() + self.bias).movedim(-1, 1)


def tap_names(generator: nn.Module, count: int = TAPS) -> list[str]:
    """Up to ``count`` evenly spaced convolution layers of ``generator`` (named_modules order), the last excluded."""
    from ..prune import is_prunable, layer_kind

    convs = [n for n, m in generator.named_modules() if is_prunable(m) and layer_kind(m)[0] in (CONV, CONV_TRANSPOSE)]
    candidates = convs[:-1]
    if not candidates:
        raise InputError(f"--feature-weight: {type(generator).__name__} has {len(convs)} convolution layer(s), none "
                         "before its output layer to distil; leave --feature-weight out")
    if len(candidates) <= count:
        return candidates
    picks = sorted({round(i * (len(candidates) - 1) / (count - 1)) for i in range(count)}) if count > 1 else [len(candidates) - 1]
    return [candidates[i] for i in picks]


def _channels(module: nn.Module) -> int:
    from ..prune import module_geometry

    return module_geometry(module).out


class FeatureDistiller:
    """The taps, their adapters, and the hooks that capture both generators' features during a step."""

    def __init__(self, teacher: nn.Module, student: nn.Module, weight: float, device: torch.device) -> None:
        self.weight = float(weight)
        self.names = tap_names(student)
        t_modules, s_modules = dict(teacher.named_modules()), dict(student.named_modules())
        missing = [n for n in self.names if n not in t_modules]
        if missing:
            raise InputError(f"--feature-weight: the teacher has no module {missing[0]!r} (the student's taps: "
                             f"{', '.join(self.names)}); use a teacher of the same architecture or leave --feature-weight out")
        self.modules = [(t_modules[n], s_modules[n]) for n in self.names]
        self.adapters = nn.ModuleList([ChannelAdapter(_channels(s), _channels(t)) for t, s in self.modules]).to(device)

    @contextmanager
    def capture(self) -> Iterator[tuple[list, list]]:
        """Inside: the first output of every tapped module of the teacher and of the student."""
        teacher: list[Tensor | None] = [None] * len(self.names)
        student: list[Tensor | None] = [None] * len(self.names)
        handles = []
        for i, (t, s) in enumerate(self.modules):
            handles.append(t.register_forward_hook(_keeper(teacher, i)))
            handles.append(s.register_forward_hook(_keeper(student, i)))
        try:
            yield teacher, student
        finally:
            for h in handles:
                h.remove()

    def loss(self, teacher: list, student: list) -> Tensor:
        """The mean normalised squared distance of the adapted student features to the teacher's."""
        if any(f is None for f in teacher + student):
            raise InputError("--feature-weight: a tapped layer did not run in the step's forward pass "
                             f"({', '.join(self.names)}); run without --compile, or leave --feature-weight out")
        terms = []
        for adapter, f_o, f_c in zip(self.adapters, teacher, student):
            f_o = f_o.detach().float()
            if f_o.shape[2:] != f_c.shape[2:] or f_o.shape[0] != f_c.shape[0]:
                raise InputError(f"--feature-weight: teacher and student features differ in shape "
                                 f"({tuple(f_o.shape)} vs {tuple(f_c.shape)}); leave --feature-weight out")
            num = (adapter(f_c.float()) - f_o).pow(2).mean()
            den = f_o.pow(2).mean()
            num, den = global_means([num, den], f_c.shape[0])
            terms.append(num / (den + 1e-8))
        return torch.stack(terms).mean()

    def add_to(self, losses, teacher: list, student: list):
        """``losses`` (a :class:`.step.StepLosses`) with ``weight * loss`` added to G_C's loss."""
        if losses.g_loss is None:
            return losses
        feature = self.loss(teacher, student)
        losses.g_loss = losses.g_loss + self.weight * feature
        losses.metrics.update(feature=feature, g_loss=losses.g_loss)
        return losses


def _keeper(store: list, i: int):
    def hook(_module: nn.Module, _inputs, output) -> None:
        if store[i] is None and torch.is_tensor(output):
            store[i] = output
    return hook

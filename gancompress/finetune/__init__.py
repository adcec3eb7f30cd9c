"""Recovering a pruned generator: the self-supervised method of Yu & Pool (NeurIPS 2020) and baselines.

Networks: G_O (the dense teacher, frozen), G_C (the student, initialised from G_O and pruned),
D (the pretrained discriminator, which keeps training on real images vs G_C's fakes unless
frozen; never pruned). ``--method``:

- ``self-supervised``: G_C minimises ``L_GC + lambda * L_DC`` (the paper's loss, see
  :mod:`gancompress.losses`);
- ``hybrid``: that plus ``mu * mean|G_C(x) - G_O(x)| / mean|G_O(x)|`` (the zoo's best by mean
  and worst case, behind distill on the DCGANs: docs/zoo.md);
- ``finetune``: ordinary GAN fine-tuning of G_C with the profile's generator loss;
- ``distill``: only the per-sample L1 to the teacher (needs no D and no data);
- ``distill-adv``: that L1 plus ``adv_weight`` times the profile's generator loss on G_C's
  fakes, with D training as in ``finetune``; best in absolute FID on the bundled GAN, mostly as
  continued training of the GAN (see ``defaults.py``);
- ``none``: the pruning applied without training (a one-shot prune at the target);
- ``auto`` (the default): ``hybrid`` when a discriminator and real images are at hand, else
  ``distill``, chosen once the inputs are loaded (the zoo's pick, docs/zoo.md).

Pruning: the input's masks, or with ``sparsity`` on a dense input, AGP (Zhu & Gupta) from 5%
to the target by ``ramp_fraction`` of the steps, masks recomputed monotonically every few
steps. Masks are re-applied after every optimizer step and pruned weights' gradients and Adam
moments are zeroed, so pruned weights stay exactly zero.

Multi-process: ``torchrun --nproc_per_node N -m gancompress finetune ...`` trains
data-parallel (``--batch-size`` stays the global batch; see :mod:`.distributed`).
"""
from importlib import import_module
from typing import Any

from .defaults import *  # noqa: F401,F403  (torch-free; the CLI reads them for --help)
from .methods import METHODS, Method, get_method, names as method_names

_LAZY = {  # the rest imports torch: loaded on first use so `--help` stays fast
    "FinetuneConfig": "config", "resolve_device": "config", "FinetuneInterrupted": "loop",
    "FinetuneResult": "loop", "run_finetune": "loop", "RunPaths": "state",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["METHODS", "Method", "get_method", "method_names", *_LAZY]

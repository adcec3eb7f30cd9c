"""Files beside the output, and the resumable training state.

For ``-o out.safetensors``: ``out.log.jsonl`` (JSON lines), ``out_samples/step_NNNNNN.png``
(teacher row above student row on fixed inputs) and ``out.resume.pt`` (the state a
``--resume`` continues from; deleted when the run completes).

The state holds the step, the student and discriminator weights (with BatchNorm buffers), both
Adam states, the masks, the current schedule sparsity, the running mean of StyleGAN2 path lengths
(``--pl-weight``), the EMA of the student (``--ema-decay``) and the feature adapters
(``--feature-weight``), the resolved config and, with ``--amp fp16``, the gradient scaler's state (its
current scale and growth tracker: a resumed fp16 run skips and scales exactly the steps the
uninterrupted one does). Randomness is
derived from ``(seed, step)`` (see ``data.py``), so no RNG stream needs saving: a resumed run
is bit-identical to an uninterrupted one on the CPU. It is a ``torch.save`` file of tensors
and plain containers, loaded with ``weights_only=True`` (no code runs on load).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import InputError
from ..io_utils import atomic_write

STATE_VERSION = 1


@dataclass(frozen=True)
class RunPaths:
    output: Path
    log: Path
    samples: Path
    state: Path

    @classmethod
    def for_output(cls, output: Path) -> "RunPaths":
        output = Path(output)
        stem = output.with_suffix("") if output.suffix else output
        return cls(output, Path(f"{stem}.log.jsonl"), Path(f"{stem}_samples"), Path(f"{stem}.resume.pt"))


@dataclass
class TrainState:
    step: int
    student: dict[str, torch.Tensor]
    discriminator: dict[str, torch.Tensor] | None
    opt_g: dict[str, Any] | None
    opt_d: dict[str, Any] | None
    masks: dict[str, torch.Tensor]
    sparsity: float | None
    config: dict[str, Any]
    metrics: dict[str, float]
    scaler: dict[str, Any] | None = None  # --amp fp16: torch.amp.GradScaler.state_dict()
    pl_mean: float | None = None  # running mean of path lengths (--pl-weight; None: not measured yet)
    extras: dict[str, dict[str, torch.Tensor]] | None = None  # "ema" (--ema-decay), "adapters" (--feature-weight)


def _cpu(sd: dict[str, torch.Tensor] | None) -> dict[str, torch.Tensor] | None:
    return None if sd is None else {k: v.detach().cpu().clone() for k, v in sd.items()}


def save_state(path: Path, state: TrainState) -> Path:
    payload = {
        "version": STATE_VERSION, "step": state.step, "student": _cpu(state.student),
        "discriminator": _cpu(state.discriminator), "opt_g": state.opt_g, "opt_d": state.opt_d,
        "masks": _cpu(state.masks), "sparsity": state.sparsity,
        "config": json.dumps(state.config, sort_keys=True), "metrics": json.dumps(state.metrics),
        "scaler": state.scaler,
        "pl_mean": state.pl_mean,
        "extras": {k: _cpu(v) for k, v in (state.extras or {}).items()},
    }
    return atomic_write(path, lambda tmp: torch.save(payload, tmp), force=True)


def load_state(path: Path) -> TrainState:
    if not path.is_file():
        raise InputError(f"nothing to resume: {path} does not exist (it is removed when a run completes); run without --resume")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user problem
        raise InputError(f"{path}: unreadable resume state ({type(exc).__name__}); delete it and start over with --force") from None
    if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
        version = data.get("version") if isinstance(data, dict) else None
        raise InputError(f"{path}: resume state version {version!r} is not supported; start over with --force")
    try:
        config, metrics = json.loads(data["config"]), json.loads(data["metrics"])
        state = TrainState(data["step"], data["student"], data["discriminator"], data["opt_g"], data["opt_d"],
                           data["masks"], data["sparsity"], config, metrics, data.get("scaler"),
                           _pl_mean(data.get("pl_mean"), path), data.get("extras") or {})
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{path}: damaged resume state ({type(exc).__name__}: {exc}); delete it and start over with --force") from None
    if not isinstance(config, dict) or not isinstance(metrics, dict):
        raise InputError(f"{path}: damaged resume state (its options are not a record); delete it and start over with --force")
    return state


def _pl_mean(value: Any, path: Path) -> float | None:
    """The stored running mean of path lengths: None (states before it, or not measured yet) or a finite number."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or abs(value) == float("inf"):
        raise InputError(f"{path}: damaged resume state (pl_mean {value!r}); delete it and start over with --force")
    return float(value)


def check_compatible(saved: dict[str, Any], current: dict[str, Any], path: Path) -> None:
    """Refuse a resume whose training options differ from the interrupted run's."""
    was, now = _leaves(saved), _leaves(current)
    diff = sorted(k for k in set(was) | set(now) if was.get(k) != now.get(k))
    if diff:
        detail = ", ".join(f"{k}: {was.get(k)!r} -> {now.get(k)!r}" for k in diff[:4])
        raise InputError(f"--resume: the options differ from the interrupted run in {path} ({detail}); "
                         "resume with the same options, or start over with --force")


def _leaves(options: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"recovery": {"batch_size": 64}}`` as ``{"recovery.batch_size": 64}``, so a refusal names the option."""
    out: dict[str, Any] = {}
    for key, value in options.items():
        if isinstance(value, dict) and value:
            out.update(_leaves(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out

"""Per-layer sparsity plans: ``{module name: sparsity}`` files that ``prune --plan`` and
``finetune --plan`` apply (``gancompress sensitivity`` writes them).

A plan is JSON: ``{"format": "gancompress-sparsity-plan", "version": 1, "layers": {name: s},
...}`` (other keys are notes: how it was made). Layers it does not name stay dense. Without
``--sparsity`` each named layer gets its own sparsity; with it, the plan's sparsities are scaled
together (capped at 1) until the zeros over ALL prunable weights reach the target, so the plan
says which layers take the zeros and ``--sparsity`` how many.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ..errors import InputError

PLAN_FORMAT = "gancompress-sparsity-plan"
MAX_PLAN_BYTES = 4 << 20


def check_plan(value: Any, source: str = "--plan") -> dict[str, float]:
    """``{module name: sparsity in [0, 1)}``, or :class:`InputError` saying what is wrong."""
    if not isinstance(value, dict) or not value:
        raise InputError(f"{source}: a plan maps module names to sparsities, e.g. {{\"net.3\": 0.9}}; got {value!r:.80}")
    out = {}
    for name, s in value.items():
        ok = isinstance(name, str) and isinstance(s, (int, float)) and not isinstance(s, bool) and math.isfinite(s)
        if not ok or not 0.0 <= s < 1.0:
            raise InputError(f"{source}: layer {name!r} has sparsity {s!r}; give a number in [0, 1)")
        out[name] = float(s)
    return out


def read_plan(path: str | Path) -> dict[str, float]:
    """The layers of a plan file (checked: size, format, values)."""
    path = Path(path).expanduser()
    try:
        if path.stat().st_size > MAX_PLAN_BYTES:
            raise InputError(f"{path}: {path.stat().st_size:,} bytes is too large for a sparsity plan")
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"--plan {path}: no such file; write one with `gancompress sensitivity SOURCE -o {path}`") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"--plan {path}: not a readable JSON plan ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != PLAN_FORMAT or doc.get("version") != 1:
        raise InputError(f"--plan {path}: not a {PLAN_FORMAT} (version 1) file; write one with `gancompress sensitivity`")
    return check_plan(doc.get("layers"), f"--plan {path}")


def plan_document(layers: dict[str, float], **notes: Any) -> dict[str, Any]:
    """The JSON document of a plan (``notes``: how it was made)."""
    return {"format": PLAN_FORMAT, "version": 1, "layers": check_plan(layers), **notes}


__all__ = ["PLAN_FORMAT", "check_plan", "read_plan", "plan_document"]

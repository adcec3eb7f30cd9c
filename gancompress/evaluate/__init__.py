"""``gancompress evaluate``: settings (:mod:`.config`), the models compared (:mod:`.models`), the
measuring run (:mod:`.run`), rows, deltas and gates (:mod:`.report`) and sample grids (:mod:`.grids`)."""
from .config import EvaluateConfig
from .report import EvaluateReport
from .run import evaluate, progress_total

__all__ = ["EvaluateConfig", "EvaluateReport", "evaluate", "progress_total"]

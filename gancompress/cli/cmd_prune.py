"""`gancompress prune` (placeholder until its issue lands)."""
from __future__ import annotations

from ..errors import GanCompressError
from .errors import handle_errors


@handle_errors
def prune() -> None:
    """Not implemented yet."""
    raise GanCompressError("'prune' is not implemented yet in this version")

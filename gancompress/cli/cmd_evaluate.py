"""`gancompress evaluate` (placeholder until its issue lands)."""
from __future__ import annotations

from ..errors import GanCompressError
from .errors import handle_errors


@handle_errors
def evaluate() -> None:
    """Not implemented yet."""
    raise GanCompressError("'evaluate' is not implemented yet in this version")

"""`gancompress export` (placeholder until its issue lands)."""
from __future__ import annotations

from ..errors import GanCompressError
from .errors import handle_errors


@handle_errors
def export() -> None:
    """Not implemented yet."""
    raise GanCompressError("'export' is not implemented yet in this version")

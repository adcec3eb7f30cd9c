"""gancompress: compress pretrained GAN generators with their own discriminator as judge.

The Python API (:mod:`gancompress.api`): ``load``, ``prune``, ``recover``, ``evaluate``, ``save``
and ``export``, imported on first use so ``import gancompress`` stays light.
"""
import sys
import types

from .version import __version__

API = ("load", "prune", "recover", "evaluate", "save", "export")
__all__ = ["__version__", *API]


class _Package(types.ModuleType):
    """``gancompress.prune``/``evaluate``/``export`` name both a subpackage and an API function; importing the
    subpackage binds it on the package, so attribute access answers the API function first. Imports
    (``from gancompress.prune import ...``, ``import gancompress.export.run``) still reach the subpackages."""

    def __getattribute__(self, name: str):
        if name in API:
            from . import api

            return getattr(api, name)
        return super().__getattribute__(name)


sys.modules[__name__].__class__ = _Package

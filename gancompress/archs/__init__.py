"""Built-in architectures. Importing this package registers them all."""
from .base import ARCHITECTURES, ArchSpec, Architecture, build, detect, load_into, register_architecture
from . import digits, dcgan, custom  # noqa: F401  (registration side effects)

try:  # families added by their own modules
    from . import pix2pix  # noqa: F401
except ImportError:  # pragma: no cover - while the module is being written
    pass
try:
    from . import esrgan  # noqa: F401
except ImportError:  # pragma: no cover
    pass

__all__ = ["ARCHITECTURES", "ArchSpec", "Architecture", "build", "detect", "load_into", "register_architecture"]

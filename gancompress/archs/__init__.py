"""Built-in architectures. Importing this package registers them all."""
from .base import (ARCHITECTURES, ArchSpec, Architecture, build, build_loaded, check_fits, detect, load_into, parse_spec,
                   register_architecture)
from . import custom, dcgan, digits, esrgan, pix2pix  # noqa: F401  (registration side effects)

__all__ = ["ARCHITECTURES", "ArchSpec", "Architecture", "build", "detect", "load_into", "register_architecture"]

"""Built-in architectures. Importing this package registers them all."""
from .base import (ARCHITECTURES, ArchSpec, Architecture, build, build_loaded, check_fits, load_into, parse_spec,
                   register_architecture)
from .detection import detect
from . import custom, dcgan, digits, esrgan, esrgan_old, pix2pix, srgan, srvgg, stylegan2_layout  # noqa: F401  (registration side effects)

__all__ = ["ARCHITECTURES", "ArchSpec", "Architecture", "build", "detect", "load_into", "register_architecture"]

"""Built-in architectures. Importing this package registers them all."""
from .base import ARCHITECTURES, ArchSpec, Architecture, build, load_into, register_architecture
from .detection import detect
from . import custom, dcgan, digits, esrgan, esrgan_old, pix2pix, srgan, srvgg  # noqa: F401  (registration side effects)

__all__ = ["ARCHITECTURES", "ArchSpec", "Architecture", "build", "detect", "load_into", "register_architecture"]

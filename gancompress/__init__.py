"""gancompress: compress pretrained GAN generators with their own discriminator as judge."""
from .version import __version__

__all__ = ["__version__", "load"]


def load(source, *, arch=None, trust_pickle=False):
    """The generator (eval mode) from any gancompress export, project checkpoint or SOURCE."""
    from .api import load as _load

    return _load(source, arch=arch, trust_pickle=trust_pickle)

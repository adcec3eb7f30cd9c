"""gancompress: compress pretrained GAN generators with their own discriminator as judge."""
__version__ = "0.1.0"

"""Training and evaluation data: real-image folders (:mod:`.images`), image-to-image pairs
(:mod:`.pairs`), the bundled digits (:mod:`.digits`) and batching (:mod:`.batches`).

One search for every kind of GAN: :func:`.images.image_files` finds the images under a folder
**recursively** (sub-folders included, sorted by the path below the folder; names starting with
``.`` skipped), whether the folder holds real images for an unconditional GAN, side-by-side pix2pix
pairs, the ``A/`` and ``B/`` domains of pix2pix or CycleGAN, or high-resolution images for
super-resolution. Paired ``A/`` and ``B/`` files match by the path below ``A/`` and ``B/`` without
the suffix. One reader (:func:`.images.read_image`, ``uint8`` ``(C, H, W)``) and one scaling
(:func:`.images.to_range`) serve them all.
"""

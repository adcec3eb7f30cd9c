"""Training and evaluation data: real-image folders (:mod:`.images`), image-to-image pairs
(:mod:`.pairs`), the bundled digits (:mod:`.digits`) and batching (:mod:`.batches`)."""

"""Image-to-image data is read lazily and streamed by DataLoader workers, batch for batch as the
in-memory path drew it (the reference below: every image decoded up front, crops cut in order)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gancompress.data.images import to_range
from gancompress.data.lazy import LazyImages
from gancompress.data.pairs import STREAM_CROP, STREAM_DEGRADE, STREAM_ORDER_A, STREAM_ORDER_B, CropSampler, \
    Degradation, ImageData, _rng, load_image_data

CPU = torch.device("cpu")
RANGE = (-1.0, 1.0)
STEPS = [0, 1, 2, 3, 5, 1]  # epochs wrap; 5 and the second 1 restart the loader (as --resume does)


def _save(array: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def _folders(root: Path) -> dict[str, Path]:
    """Images of different sizes: A/ and B/ pairs, side-by-side pairs (one grayscale), unequal A/B counts."""
    rng = np.random.default_rng(0)
    for i in range(7):
        h, w = 20 + 3 * i, 24 + 2 * (i % 3)
        a, b = (rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(2))
        _save(a, root / "ab" / "A" / f"{i:02d}.png")
        _save(b, root / "ab" / "B" / f"{i:02d}.png")
        pair = np.concatenate([a[:, :h] if w >= h else a, b[:, :h] if w >= h else b], axis=1)[:, :2 * min(h, w)]
        side = pair[:min(h, w)]
        _save(side[..., 0] if i == 3 else side, root / "side" / f"{i:02d}.png")
        if i < 5:
            _save(b, root / "unpaired" / "B" / f"{i:02d}.png")
        _save(a, root / "unpaired" / "A" / f"{i:02d}.png")
    return {"ab": root / "ab", "side": root / "side", "unpaired": root / "unpaired"}


def _decoded(data: ImageData) -> ImageData:
    return ImageData(data.kind, list(data.a), list(data.b), data.names, data.scale, data.notes)


def _reference(s: CropSampler, data: ImageData, step: int):
    """The in-memory draw (before streaming): crops of the decoded images, cut in order."""
    def crop(image, g, flip):
        h, w = image.shape[1:]
        top = int(torch.randint(0, h - s.crop + 1, (1,), generator=g))
        left = int(torch.randint(0, w - s.crop + 1, (1,), generator=g))
        out = image[:, top:top + s.crop, left:left + s.crop]
        return out.flip(-1) if flip else out

    flip = (lambda g: bool(torch.rand((), generator=g) < 0.5))
    g = _rng(s.seed, step, STREAM_CROP)
    if data.kind == "paired":
        xs, ys = [], []
        for i in s._order(step, s.n, STREAM_ORDER_A).tolist():
            gi = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,), generator=g)))
            f = flip(gi)
            state = gi.get_state()
            xs.append(crop(data.a[i], gi, f))
            gi.set_state(state)
            ys.append(crop(data.b[i], gi, f))
        x = to_range(torch.stack(xs), RANGE)
        return x, to_range(torch.stack(ys), RANGE)
    if data.kind == "sr":
        hr = to_range(torch.stack([crop(data.b[i], g, flip(g)) for i in s._order(step, s.n, STREAM_ORDER_A).tolist()]), RANGE)
        return s.degradation(hr, RANGE, _rng(s.seed, step, STREAM_DEGRADE)), hr
    xs = [crop(data.a[i], g, flip(g)) for i in s._order(step, s.n, STREAM_ORDER_A).tolist()]
    ys = [crop(data.b[i], g, flip(g)) for i in s._order(step, len(data.b), STREAM_ORDER_B).tolist()]
    return to_range(torch.stack(xs), RANGE), to_range(torch.stack(ys), RANGE)


@pytest.mark.parametrize("kind, folder", [("paired", "ab"), ("paired", "side"), ("unpaired", "unpaired"), ("sr", "ab/B")])
def test_streamed_crops_with_workers_equal_the_in_memory_ones(tmp_path, kind, folder):
    root, _, sub = folder.partition("/")
    data = load_image_data(kind, str(_folders(tmp_path)[root] / sub), 3, 3, scale=2)
    assert isinstance(data.b, LazyImages)  # nothing decoded yet: only the headers were read
    degradation = Degradation(2, blur=0.5, noise=0.05) if kind == "sr" else None
    streamed = CropSampler(7, 3, data, 16, RANGE, degradation, workers=2)
    streamed.place(CPU)
    memory = _decoded(data)
    for step in STEPS:
        x, real = _reference(streamed, memory, step)
        batch = streamed.draw(step, CPU)
        assert torch.equal(batch.x, x) and torch.equal(batch.real, real), step
        assert (batch.real_x is not None) == (kind != "unpaired")
    assert streamed.stream.workers == 2
    streamed.stream.close()


@pytest.mark.parametrize("kind", ["paired", "sr"])
def test_each_rank_streams_only_its_slice(tmp_path, kind):
    folders = _folders(tmp_path)
    data = load_image_data(kind, str(folders["side"] if kind == "paired" else folders["ab"] / "B"), 3, 3, scale=2)
    degradation = Degradation(2, noise=0.1) if kind == "sr" else None
    whole = CropSampler(3, 5, data, 16, RANGE, degradation).draw(4, CPU)
    for bounds in ((0, 3), (3, 5)):
        rank = CropSampler(3, 5, data, 16, RANGE, degradation, workers=0)
        rank.place(CPU, bounds)
        part = rank.draw(4, CPU)
        lo, hi = bounds
        assert part.sharded and torch.equal(part.x, whole.x[lo:hi]) and torch.equal(part.real, whole.real[lo:hi])


def test_loading_reads_headers_only_and_notes_conversions(tmp_path, monkeypatch):
    import gancompress.data.lazy as lazy

    folders = _folders(tmp_path)
    decoded = []
    original = lazy.read_image
    monkeypatch.setattr(lazy, "read_image", lambda path, *a: decoded.append(path) or original(path, *a))
    data = load_image_data("paired", str(folders["side"]), 3, 3)
    assert not decoded and data.n == 7
    assert len(data.notes) == 1 and "grayscale" in data.notes[0]  # from the headers, once
    gray = data.a[3]
    assert gray.shape[0] == 3 and torch.equal(gray[0], gray[2])
    CropSampler(0, 4, data, 16, RANGE).draw(0, CPU)
    assert len(decoded) == 1 + 4  # image 3 above, then each sampled side-by-side file once for both halves

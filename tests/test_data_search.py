"""Every GAN kind finds the images of a folder tree the same way (recursive, sorted, hidden skipped)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gancompress.data.images import image_files, load_real
from gancompress.data.pairs import load_image_data
from gancompress.errors import InputError

FOUND = ["a.png", "sub/b.png", "sub/deeper/c.jpg"]
SKIPPED = [".hidden/x.png", "sub/.ipynb_checkpoints/y.png", ".z.png"]


def _tree(root: Path, width: int = 8, height: int = 8) -> None:
    for i, rel in enumerate(FOUND + SKIPPED):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        value = 40 * (i + 1) if rel in FOUND else 255
        Image.fromarray(np.full((height, width, 3), value, np.uint8)).save(path)
    (root / "sub" / "notes.txt").write_text("not an image")


def test_the_same_tree_is_found_the_same_way_by_every_kind(tmp_path: Path) -> None:
    real = tmp_path / "real"
    _tree(real)
    assert [p.relative_to(real).as_posix() for p in image_files(real)] == FOUND
    images = load_real(str(real), size=8, channels=3, value_range=(0.0, 255.0))
    assert images.mean(dim=(1, 2, 3)).round().tolist() == [40.0, 80.0, 120.0]  # a, sub/b, sub/deeper/c in order

    assert load_image_data("sr", str(real), 3, 3, scale=2).names == FOUND

    both = tmp_path / "ab"
    _tree(both / "A")
    _tree(both / "B")
    for kind in ("paired", "unpaired"):
        data = load_image_data(kind, str(both), 3, 3)
        assert data.names == FOUND, kind
        assert [int(a.float().mean().round()) for a in data.a] == [40, 80, 120], kind
    inputs = load_image_data("paired", str(both / "B"), 3, 3, inputs=str(both / "A"))
    assert inputs.names == FOUND

    side = tmp_path / "side"
    _tree(side, width=16)
    assert load_image_data("paired", str(side), 3, 3).names == FOUND


def test_pairs_match_by_path_below_a_and_b(tmp_path: Path) -> None:
    _tree(tmp_path / "A")
    _tree(tmp_path / "B")
    (tmp_path / "B" / "sub" / "b.png").rename(tmp_path / "B" / "b.png")  # same stem, other folder
    with pytest.raises(InputError, match=r"1 only in A/ \(sub/b\); 1 only in B/ \(b\)"):
        load_image_data("paired", str(tmp_path), 3, 3)


def test_a_folder_of_only_hidden_images_is_empty(tmp_path: Path) -> None:
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / ".only.png")
    with pytest.raises(InputError, match="no images"):
        image_files(tmp_path)

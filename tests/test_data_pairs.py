"""Image-to-image data: layouts, matching, crops, SR degradation, channel conversion, errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gancompress.data.pairs import (CropSampler, Degradation, eval_pairs, load_image_data, load_paired, load_sr,
                                    load_unpaired)
from gancompress.errors import InputError
from img2img_fixtures import ab_folders, hr_folder, save, side_by_side

RANGE = (-1.0, 1.0)


def inverse_translate(b: torch.Tensor) -> torch.Tensor:
    """B = 255 - reversed channels of A, in [-1, 1]: A = -flip(B)."""
    return -b.flip(1)


@pytest.mark.parametrize("layout", ["side_by_side", "ab"])
def test_paired_layouts_load_the_same_pairs(tmp_path, layout):
    folder = side_by_side(tmp_path / "d") if layout == "side_by_side" else ab_folders(tmp_path / "d")
    data = load_paired(str(folder), 3, 3)
    assert data.kind == "paired" and data.n == 6 and data.a[0].shape == (3, 64, 64)
    for a, b in zip(data.a, data.b):
        assert torch.equal(255 - a.flip(0), b)
    swapped = load_paired(str(folder), 3, 3, direction="BtoA")
    assert torch.equal(swapped.a[0], data.b[0]) and torch.equal(swapped.b[0], data.a[0])


def test_inputs_folder_pairs_by_name(tmp_path):
    folder = ab_folders(tmp_path / "d")
    data = load_image_data("paired", str(folder / "B"), 3, 3, inputs=str(folder / "A"))
    assert data.n == 6 and torch.equal(255 - data.a[3].flip(0), data.b[3])


def test_paired_crops_take_the_same_window_and_flip(tmp_path):
    data = load_paired(str(side_by_side(tmp_path / "d")), 3, 3)
    sampler = CropSampler(seed=3, batch_size=4, data=data, crop=24, value_range=RANGE)
    batch = sampler.draw(5, torch.device("cpu"))
    assert batch.x.shape == (4, 3, 24, 24) and batch.real.shape == (4, 3, 24, 24)
    assert torch.allclose(inverse_translate(batch.real), batch.x, atol=1e-6)
    assert batch.real_x is batch.x or torch.equal(batch.real_x, batch.x)
    again = sampler.draw(5, torch.device("cpu"))
    assert torch.equal(again.x, batch.x)  # deterministic in (seed, step)
    assert not torch.equal(sampler.draw(6, torch.device("cpu")).x, batch.x)


def test_unpaired_counts_may_differ(tmp_path):
    data = load_unpaired(str(ab_folders(tmp_path / "d", n=5, n_b=3)), 3, 3)
    assert len(data.a) == 5 and len(data.b) == 3
    batch = CropSampler(0, 4, data, 32, RANGE).draw(0, torch.device("cpu"))
    assert batch.x.shape == batch.real.shape == (4, 3, 32, 32) and batch.real_x is None


def test_sr_inputs_are_bicubic_downscaled_crops(tmp_path):
    data = load_sr(str(hr_folder(tmp_path / "hr")), 3, scale=4)
    sampler = CropSampler(0, 2, data, 32, (0.0, 1.0))
    batch = sampler.draw(0, torch.device("cpu"))
    assert batch.real.shape == (2, 3, 32, 32) and batch.x.shape == (2, 3, 8, 8)
    expected = F.interpolate(batch.real, size=(8, 8), mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)
    assert torch.allclose(batch.x, expected, atol=1e-6)
    noisy = Degradation(4, blur=1.0, noise=0.05)(batch.real, (0.0, 1.0), torch.Generator().manual_seed(0))
    assert noisy.shape == batch.x.shape and not torch.allclose(noisy, batch.x)
    items = eval_pairs(data, (0.0, 1.0))
    assert items[0][1].shape == (1, 3, 16, 16) and items[0][2].shape == (1, 3, 64, 64)


def test_grayscale_to_rgb_and_back_with_one_notice(tmp_path):
    gray = load_paired(str(side_by_side(tmp_path / "g", gray=True)), 3, 3)
    assert gray.a[0].shape[0] == 3 and torch.equal(gray.a[0][0], gray.a[0][2])
    assert len(gray.notes) == 1 and "grayscale" in gray.notes[0]
    rgb_to_gray = load_paired(str(side_by_side(tmp_path / "c")), 1, 1)
    assert rgb_to_gray.a[0].shape[0] == 1 and len(rgb_to_gray.notes) == 1 and "luma" in rgb_to_gray.notes[0]


def test_unpaired_folder_given_as_pix2pix_data_is_refused(tmp_path):
    hr_folder(tmp_path / "single")  # square images, no A/ B/
    with pytest.raises(InputError, match="side-by-side"):
        load_paired(str(tmp_path / "single"), 3, 3)
    with pytest.raises(InputError, match="A/ and B/"):
        load_unpaired(str(tmp_path / "single"), 3, 3)


def test_mismatched_a_b_names_are_listed(tmp_path):
    folder = ab_folders(tmp_path / "d")
    (folder / "B" / "002.png").rename(folder / "B" / "zzz.png")
    with pytest.raises(InputError, match=r"do not match.*only in A/ \(002\).*only in B/ \(zzz\)"):
        load_paired(str(folder), 3, 3)


def test_images_smaller_than_the_crop(tmp_path):
    folder = side_by_side(tmp_path / "d", size=64)
    save(np.zeros((16, 32, 3), np.uint8), folder / "tiny.png")
    data = load_paired(str(folder), 3, 3)
    with pytest.raises(InputError, match="tiny.png is 16x16, smaller than --crop 32"):
        CropSampler(0, 2, data, 32, RANGE)
    with pytest.raises(InputError, match="multiple of the x4"):
        CropSampler(0, 2, load_sr(str(hr_folder(tmp_path / "hr")), 3, 4), 30, RANGE)

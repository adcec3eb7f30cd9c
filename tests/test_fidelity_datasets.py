"""--data NAME: torch-fidelity's registered data sets (they download, so only the name resolution,
a data set registered here, and the offline error are tested)."""
from __future__ import annotations

import pytest
import torch
from torch.utils.data import Dataset

from gancompress.errors import InputError
from gancompress.metrics import fidelity_datasets as fd


class _Squares(Dataset):
    def __init__(self, root, download):
        self.images = (torch.arange(5 * 3 * 8 * 8) % 256).to(torch.uint8).view(5, 3, 8, 8)

    def __len__(self):
        return 5

    def __getitem__(self, i):
        return self.images[i]


@pytest.fixture(scope="module")
def squares():
    from torch_fidelity.registry import DATASETS_REGISTRY, register_dataset

    if "gancompress-test-squares" not in DATASETS_REGISTRY:
        register_dataset("gancompress-test-squares", _Squares)
    return "gancompress-test-squares"


def test_names_resolve_to_torch_fidelity_datasets(squares):
    assert fd.is_registered("cifar10-train") and fd.is_registered("stl10-test") and fd.is_registered(squares)
    assert not fd.is_registered("cifar10") and not fd.is_registered("./cifar10-train")


def test_a_registered_dataset_is_read_as_uint8_at_the_generators_size(squares, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    ds = fd.open_registered(squares)
    same = fd.load_registered(ds, size=8, channels=3, limit=4, chunk=3)
    assert same.dtype == torch.uint8 and torch.equal(same, _Squares(None, False).images[:4])
    grey = fd.load_registered(ds, size=16, channels=1)
    assert grey.shape == (5, 1, 16, 16) and grey.dtype == torch.uint8


def test_offline_error_is_one_line_naming_the_set_and_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("GANCOMPRESS_OFFLINE", "1")  # torchvision is told not to download
    with pytest.raises(InputError) as err:
        fd.open_registered("cifar10-train")
    msg = str(err.value)
    assert "cifar10-train" in msg and str(tmp_path / "fidelity_datasets") in msg and "\n" not in msg
    assert "statistics .npz" in msg

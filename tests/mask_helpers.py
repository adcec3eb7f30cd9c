"""Hand-made pruning masks shared by the export tests (independent of gancompress.prune)."""
import torch
from torch import nn


def random_filter_masks(model: nn.Module, s: float, seed: int = 0) -> dict[str, torch.Tensor]:
    """Exactly ``s`` of the output filters of every conv but the last (image) one, independently per layer."""
    gen = torch.Generator().manual_seed(seed)
    convs = [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    masks = {}
    for name, m in convs[:-1]:
        dim = 1 if isinstance(m, nn.ConvTranspose2d) else 0
        n = m.weight.shape[dim]
        keep = torch.ones(n, dtype=torch.bool)
        keep[torch.randperm(n, generator=gen)[: round(s * n)]] = False
        view = [1] * 4
        view[dim] = n
        masks[f"{name}.weight"] = keep.view(view).expand_as(m.weight).clone()
    return masks

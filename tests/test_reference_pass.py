"""D's reference pass (the teacher's fakes) must not change D's state."""
import torch
from torch import nn

from gancompress.finetune.step import reference_pass


def _state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items()}


def test_batchnorm_running_stats_untouched_but_batch_stats_used():
    torch.manual_seed(0)
    d = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 6 * 6, 1)).train()
    before = _state(d)
    x = torch.randn(5, 3, 8, 8) * 3 + 1
    with torch.no_grad(), reference_pass(d):
        out = d(x)
    after = _state(d)
    assert all(torch.equal(before[k], after[k]) for k in before)  # running mean/var and counter unchanged
    assert d[1].track_running_stats and d.training  # restored
    with torch.no_grad():
        d_eval_stats = d.eval()(x)
    assert not torch.allclose(out, d_eval_stats)  # the pass normalised with the batch's own statistics
    d.train()
    with torch.no_grad():
        d(x)  # an ordinary train-mode pass does move them: the test above could fail
    assert not torch.equal(before["1.running_mean"], d.state_dict()["1.running_mean"])


def test_spectral_norm_power_iteration_not_advanced():
    torch.manual_seed(0)
    d = nn.Sequential(nn.utils.spectral_norm(nn.Conv2d(3, 4, 3)), nn.Flatten()).train()
    before = _state(d)
    with torch.no_grad(), reference_pass(d):
        d(torch.randn(2, 3, 8, 8))
    assert all(torch.equal(before[k], v) for k, v in d.state_dict().items())
    assert d[0].training
    with torch.no_grad():
        d(torch.randn(2, 3, 8, 8))
    assert not torch.equal(before["0.weight_u"], d.state_dict()["0.weight_u"])

"""The shared configs, registries and progress/stop plumbing of issue 15."""
from __future__ import annotations

import ast
import os
import signal
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import gancompress
from gancompress.errors import InputError
from gancompress.evaluate.config import EvaluateConfig
from gancompress.export import formats as export_formats
from gancompress.finetune import methods
from gancompress.finetune.config import FinetuneConfig, LossWeights, Rates, RecoveryConfig
from gancompress.formats.checkpoint import save_bundle
from gancompress.loading import LoadOptions, load_bundle

USER_NETS = """
import torch
class Gen(torch.nn.Module):
    input_shape = (4,)
    def __init__(self, nz=4):
        super().__init__()
        self.fc = torch.nn.Linear(nz, 12)
    def forward(self, z):
        return torch.tanh(self.fc(z)).view(-1, 3, 2, 2)
class Critic(torch.nn.Module):
    def __init__(self, width=5):
        super().__init__()
        self.body = torch.nn.Linear(12, width)
        self.head = torch.nn.Linear(width, 1)
    def forward(self, x):
        return self.head(torch.relu(self.body(x.flatten(1))))
"""


def test_methods_registry_drives_what_a_step_computes():
    assert set(methods.names()) == {"self-supervised", "finetune", "distill", "hybrid", "distill-adv", "none", "auto"}
    adv = methods.get_method("distill-adv")
    assert adv.uses_teacher and adv.uses_d and adv.trains_d and not adv.consistency
    assert adv.g_loss({"l1": 2.0, "adv": 3.0}, LossWeights(adv_weight=0.5)) == 3.5
    assert methods.get_method("hybrid").g_loss({"L_GC": 1.0, "L_DC": 2.0, "l1": 4.0}, LossWeights(lam=0.5, mu=0)) == 2.0
    assert not methods.get_method("none").trains_generator and not methods.get_method("distill").uses_d
    assert methods.get_method("auto").is_choice and not methods.get_method("hybrid").is_choice
    with pytest.raises(InputError, match="did you mean distill"):
        methods.get_method("distil")


def test_export_formats_registry_is_what_export_dispatches_to(tmp_path, monkeypatch):
    from gancompress.archs import ArchSpec, build
    from gancompress.export import ExportConfig, export_bundle
    from gancompress.formats.checkpoint import GanBundle

    assert export_formats.names() == ["sparse", "dense", "shrunk", "onnx"]
    seen = []
    monkeypatch.setattr(export_formats.EXPORT_FORMATS, "_items", dict(export_formats.EXPORT_FORMATS._items))
    export_formats.register_format(export_formats.ExportFormat("probe", lambda b, c: seen.append((b, c)) or "ok"))
    spec = ArchSpec("digits-dcgan-g", {"nz": 8, "ngf": 8, "nc": 1})
    bundle = GanBundle(build(spec), spec)
    assert export_bundle(bundle, ExportConfig("x", tmp_path / "p.bin", format="probe")) == "ok" and seen
    with pytest.raises(InputError, match="unknown export format 'zip'"):
        export_bundle(bundle, ExportConfig("x", tmp_path / "z.bin", format="zip"))


def test_each_part_checks_itself_once():
    with pytest.raises(InputError, match="--lr-g must be a positive number"):
        Rates(lr_g=0)
    with pytest.raises(InputError, match="--adv-weight must be a non-negative number"):
        LossWeights(adv_weight=-1)
    with pytest.raises(InputError, match="--steps must be a positive integer"):
        RecoveryConfig(steps=0)
    with pytest.raises(InputError, match="needs real images"):
        FinetuneConfig.from_options(source="builtin:digits-dcgan", output="o.safetensors", method="distill-adv")
    with pytest.raises(TypeError, match="unknown finetune options: colour"):
        FinetuneConfig.from_options(source="s", output="o", method="distill", colour=1)
    c = FinetuneConfig.from_options(source="s", output="o.safetensors", method="distill", sparsity=0.5,
                                    granularity="filter", lr_g=1e-3, mask_every=2, trust_pickle=True, seed=3)
    assert (c.prune.granularity, c.recovery.rates.lr_g, c.recovery.schedule.mask_every) == ("filter", 1e-3, 2)
    assert c.load == LoadOptions("s", trust_pickle=True) and c.run.seed == 3
    key = c.resume_key()  # what an interrupted run and its --resume must share
    assert key["run"] == {"seed": 3} and "trust_pickle" not in key["load"] and key["recovery"]["rates"]["lr_g"] == 1e-3


def test_d_arch_loads_the_users_discriminator_and_is_required_again(tmp_path, monkeypatch):
    (tmp_path / "usernets.py").write_text(USER_NETS)
    monkeypatch.syspath_prepend(str(tmp_path))
    import usernets

    g, d = usernets.Gen(), usernets.Critic(width=5)
    save_file({**{f"G.{k}": v for k, v in g.state_dict().items()}, **{f"D.{k}": v for k, v in d.state_dict().items()}},
              str(tmp_path / "both.safetensors"))
    options = LoadOptions(str(tmp_path / "both.safetensors"), arch="usernets:Gen", d_arch="usernets:Critic",
                          d_arch_kwargs={"width": 5})
    bundle = load_bundle(options)
    x = torch.randn(2, 3, 2, 2)
    assert torch.equal(bundle.discriminator(x), d(x))
    assert bundle.d_spec.kwargs == {"target": "usernets:Critic", "kwargs": {"width": 5}, "role": "discriminator"}
    out = save_bundle(bundle, tmp_path / "project.safetensors")
    with pytest.raises(InputError, match="pass --d-arch usernets:Critic"):
        load_bundle(LoadOptions(str(out), arch="usernets:Gen"))
    again = load_bundle(options.for_source(str(out)))
    assert torch.equal(again.discriminator(x), d(x))


def test_cli_maps_sigint_and_sigterm_to_should_stop_and_restores_the_handlers():
    from gancompress.cli.progress import stop_signals

    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for sig in (signal.SIGTERM, signal.SIGINT):
        with stop_signals() as should_stop:
            assert not should_stop()
            os.kill(os.getpid(), sig)
            assert should_stop()
        assert {s: signal.getsignal(s) for s in before} == before
    with pytest.raises(KeyboardInterrupt), stop_signals():  # a second Ctrl-C interrupts at once
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)


def test_the_library_installs_no_signal_handlers():
    import ast
    from pathlib import Path

    package = Path(__file__).resolve().parents[1] / "gancompress"
    users = [str(p.relative_to(package)) for p in package.rglob("*.py")
             if "signal" in {a.name for n in ast.walk(ast.parse(p.read_text())) if isinstance(n, ast.Import)
                             for a in n.names}]
    assert users == ["cli/progress.py"]


MAX_CONFIG_FIELDS = 15


def _dataclass_fields(tree: ast.Module) -> dict[str, int]:
    """Field count of every ``@dataclass`` class named ``*Config``/``*Options`` (annotated class attributes)."""
    def is_dataclass(d: ast.expr) -> bool:
        target = d.func if isinstance(d, ast.Call) else d
        return (isinstance(target, ast.Name) and target.id == "dataclass") or (
            isinstance(target, ast.Attribute) and target.attr == "dataclass")

    counts = {}
    for node in ast.walk(tree):
        if (isinstance(node, ast.ClassDef) and node.name.endswith(("Config", "Options"))
                and any(is_dataclass(d) for d in node.decorator_list)):
            counts[node.name] = sum(isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)
                                    and "ClassVar" not in ast.unparse(s.annotation) for s in node.body)
    return counts


def test_no_config_has_more_than_fifteen_fields():
    root = Path(gancompress.__file__).parent
    counts = {f"{path.relative_to(root)}:{name}": n for path in sorted(root.rglob("*.py"))
              for name, n in _dataclass_fields(ast.parse(path.read_text())).items()}
    assert "evaluate/config.py:EvaluateConfig" in counts and "finetune/config.py:FinetuneConfig" in counts
    too_big = {k: n for k, n in counts.items() if n > MAX_CONFIG_FIELDS}
    assert not too_big, f"split these configs into composed parts of at most {MAX_CONFIG_FIELDS} fields: {too_big}"


def test_field_counter_sees_a_big_dataclass():
    fields = "\n".join(f"    f{i}: int = {i}" for i in range(16))
    tree = ast.parse(f"@dataclasses.dataclass(frozen=True)\nclass BigConfig:\n{fields}\n    X: ClassVar[int] = 1\n")
    assert _dataclass_fields(tree) == {"BigConfig": 16}


def test_evaluate_config_parts_check_themselves_and_join_once():
    c = EvaluateConfig.from_options(sources=["a", "b"], fid=True, max_fid=5.0, out="r.json", seed=4, trust_pickle=True,
                                    direction="BtoA", data="d")
    assert c.models.reference_index == 0 and c.metrics.fid and c.gates.max_fid == 5.0 and c.run.seed == 4
    assert c.models.load == LoadOptions(trust_pickle=True, direction="BtoA") and c.outputs.out == "r.json"
    with pytest.raises(InputError, match="--max-fid needs --fid"):
        EvaluateConfig.from_options(sources=["a"], max_fid=5.0)
    with pytest.raises(InputError, match="--max-fid-increase needs --fid and a --reference"):
        EvaluateConfig.from_options(sources=["a"], fid=True, max_fid_increase_pct=10.0)
    with pytest.raises(InputError, match="--kid and --prc need the real images"):
        EvaluateConfig.from_options(sources=["a"], kid=True, real="stats.npz")
    with pytest.raises(InputError, match="--grid-columns must be at least 1"):
        EvaluateConfig.from_options(sources=["a"], grid_columns=0)
    with pytest.raises(InputError, match="direction"):
        EvaluateConfig.from_options(sources=["a"], direction="sideways")
    with pytest.raises(TypeError, match="unknown evaluate options: colour"):
        EvaluateConfig.from_options(sources=["a"], colour=1)

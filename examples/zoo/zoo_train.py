"""What every zoo training script shares: the GAN loop with early stopping, the rulers, the curve, the save.

The loop (:func:`train`) alternates one discriminator and one generator step (non-saturating or
hinge loss, optional lazy R1 penalty on D), scores the generator every ``eval_every`` steps with
a ruler (lower is better: digits-FID, or minus PSNR for super-resolution), keeps the best
generator and discriminator, and stops when ``patience`` evaluations in a row have not beaten
the best by ``min_delta`` (relative), or at ``max_steps``. With ``lr_decays`` K, running out of
patience first sends G and D back to their best and halves both learning rates (``lr_decay``), up to
K times, and only then stops (reduce-on-plateau: a GAN's score oscillates, and a smaller step is
what settles it). So each member is trained until its score stops improving, and continued
training cannot pass for recovery.

:func:`finish` writes, next to the checkpoint, ``<name>.curve.csv``, ``<name>.train.json`` (the
provenance: seed, options, best step, the curve) and ``<name>.curve.png`` when matplotlib is
there; the checkpoint is a gancompress project file (``formats.checkpoint.save_bundle``) that
every command reads (with ``--arch``/``--d-arch`` for the networks of ``zoo_nets``).
"""
from __future__ import annotations

import copy
import csv
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
for path in (REPO, REPO / "examples", HERE):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from train_digits_gan import classifier_features, frechet_distance, gaussian_fit  # noqa: E402  (the bundled GAN's ruler)


@dataclass(frozen=True)
class LoopConfig:
    """How long and how a member trains; every field is written into its provenance."""

    max_steps: int = 12_000
    batch: int = 64
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    loss: str = "ns"  # "ns" (softplus) or "hinge"
    r1_gamma: float = 1.0  # 0: no R1 penalty
    r1_every: int = 4
    eval_every: int = 500
    adv_weight: float = 1.0  # G's adversarial term (paired tasks add an L1 to the target with weight 1)
    patience: int = 4  # evaluations without a better score before stopping
    min_delta: float = 0.02  # relative improvement that counts as better
    seed: int = 0
    # reduce-on-plateau: when patience runs out, go back to the best G and D and go on with both learning rates
    # times lr_decay (fresh optimizers), up to lr_decays times; training stops when patience runs out after the last
    lr_decays: int = 0
    lr_decay: float = 0.5

    def __post_init__(self) -> None:
        if self.loss not in ("ns", "hinge"):
            raise ValueError(f"loss must be 'ns' or 'hinge', got {self.loss!r}")
        if min(self.max_steps, self.batch, self.eval_every, self.patience, self.r1_every) < 1:
            raise ValueError("max_steps, batch, eval_every, patience and r1_every must be positive")
        if self.lr_decays < 0 or not 0 < self.lr_decay < 1:
            raise ValueError("lr_decays must be 0 or more and lr_decay in (0, 1)")


@dataclass
class Task:
    """What differs between members: ``real(batch, gen) -> (x, labels | None)``, ``inputs(batch, gen) ->
    (G's input, labels | None, target | None)`` (a target adds an L1 term: super-resolution) and
    ``score(g) -> float`` (lower is better, G in eval mode)."""

    real: Callable
    inputs: Callable
    score: Callable


def call(net: torch.nn.Module, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    return net(x) if labels is None else net(x, labels)


def d_loss(loss: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    if loss == "hinge":
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def g_loss(loss: str, fake: torch.Tensor) -> torch.Tensor:
    return -fake.mean() if loss == "hinge" else F.softplus(-fake).mean()


def _r1(d, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(call(d, x, labels).sum(), x, create_graph=True)
    return grad.pow(2).flatten(1).sum(1).mean()


def _optimizers(g, d, cfg: LoopConfig, scale: float = 1.0):
    betas = (0.5, 0.999)
    c = cfg.r1_every / (cfg.r1_every + 1) if cfg.r1_gamma > 0 else 1.0  # lazy R1 (StyleGAN2's scaling)
    return (torch.optim.Adam(g.parameters(), lr=cfg.lr_g * scale, betas=betas),
            torch.optim.Adam(d.parameters(), lr=cfg.lr_d * c * scale, betas=(betas[0] ** c, betas[1] ** c)))


def _step(g, d, opt_g, opt_d, task: Task, cfg: LoopConfig, step: int, gen: torch.Generator) -> tuple[float, float]:
    x, y = task.real(cfg.batch, gen)
    z, zy, _ = task.inputs(cfg.batch, gen)
    with torch.no_grad():
        fake = call(g, z, zy)
    loss_d = d_loss(cfg.loss, call(d, x, y), call(d, fake, zy))
    opt_d.zero_grad(set_to_none=True)
    loss_d.backward()
    if cfg.r1_gamma > 0 and step % cfg.r1_every == 0:
        (0.5 * cfg.r1_gamma * cfg.r1_every * _r1(d, x, y)).backward()
    opt_d.step()
    z, zy, target = task.inputs(cfg.batch, gen)
    fake = call(g, z, zy)
    loss_g = cfg.adv_weight * g_loss(cfg.loss, call(d, fake, zy))
    if target is not None:
        loss_g = loss_g + F.l1_loss(fake, target)
    opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    opt_g.step()
    return loss_d.item(), loss_g.item()


def _evaluate(g, task: Task) -> float:
    g.eval()
    with torch.no_grad():
        value = float(task.score(g))
    g.train()
    return value


def train(g, d, task: Task, cfg: LoopConfig, log: Callable[[str], None] = print, baseline: bool = False) -> dict:
    """Train until the score stops improving; load the best G and D back; return the provenance.

    ``baseline``: score G before the first step (step 0 of the curve) and count it as the best to
    beat, so continuing a trained member stops after ``patience`` evaluations that do not beat it
    by ``min_delta``, and keeps it when nothing does (the plateau check, :func:`plateau_verdict`)."""
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    opt_g, opt_d = _optimizers(g, d, cfg)
    best = {"score": float("inf"), "step": 0, "g": copy.deepcopy(g.state_dict()), "d": copy.deepcopy(d.state_dict())}
    history, stale, started, losses, scale, decays = [], 0, time.time(), [0.0, 0.0], 1.0, 0
    have_best, step = baseline, 0
    if baseline:
        best["score"] = _evaluate(g, task)
        history.append({"step": 0, "score": round(best["score"], 4), "loss_d": None, "loss_g": None, "seconds": 0.0,
                        "lr_scale": 1.0})
        log(f"step      0  score {best['score']:.3f}  (the checkpoint continued from)")
    for step in range(1, cfg.max_steps + 1):
        ld, lg = _step(g, d, opt_g, opt_d, task, cfg, step, gen)
        losses = [losses[0] + ld, losses[1] + lg]
        if step % cfg.eval_every:
            continue
        score = _evaluate(g, task)
        better = score < best["score"] - cfg.min_delta * abs(best["score"]) if have_best else True
        have_best = True
        history.append({"step": step, "score": round(score, 4), "loss_d": round(losses[0] / cfg.eval_every, 4),
                        "loss_g": round(losses[1] / cfg.eval_every, 4), "seconds": round(time.time() - started, 1),
                        "lr_scale": scale})
        losses, stale = [0.0, 0.0], 0 if better else stale + 1
        if better or score < best["score"]:
            best.update(score=score, step=step, g=copy.deepcopy(g.state_dict()), d=copy.deepcopy(d.state_dict()))
        log(f"step {step:6d}  D {history[-1]['loss_d']:.3f}  G {history[-1]['loss_g']:.3f}  score {score:.3f}"
            f"{'  * best' if best['step'] == step else ''}  ({history[-1]['seconds']:.0f} s)")
        if stale >= cfg.patience and decays < cfg.lr_decays:
            decays, scale = decays + 1, scale * cfg.lr_decay
            g.load_state_dict(best["g"])
            d.load_state_dict(best["d"])
            opt_g, opt_d = _optimizers(g, d, cfg, scale)
            stale = 0
            log(f"{cfg.patience} evaluations without a {cfg.min_delta:.1%} improvement: back to the best (step "
                f"{best['step']}), learning rates x{scale:g}")
        elif stale >= cfg.patience:
            log(f"stopped: {cfg.patience} evaluations without a {cfg.min_delta:.1%} improvement")
            break
    g.load_state_dict(best["g"])
    d.load_state_dict(best["d"])
    return {"loop": asdict(cfg), "best_step": best["step"], "best_score": round(best["score"], 4), "steps": step,
            "stopped_early": stale >= cfg.patience, "curve": history, "train_seconds": round(time.time() - started, 1)}


def plateau_verdict(provenance: dict) -> dict:
    """What continuing a trained member showed (``train(..., baseline=True)``'s provenance): its score
    (step 0), the best after it, the relative gain, and ``at_plateau``: no evaluation beat the start
    by the loop's ``min_delta``, as the stopping rule asks of a member that stopped by itself."""
    start, best = provenance["curve"][0]["score"], provenance["best_score"]
    gain = (start - best) / abs(start) if start else 0.0
    return {"start_score": start, "best_score": best, "best_step": provenance["best_step"],
            "steps": provenance["steps"], "relative_gain": round(gain, 4),
            "at_plateau": gain < provenance["loop"]["min_delta"]}


def train_member(g, d, task: Task, cfg: LoopConfig, continue_from: Path | None, names: tuple[str, str],
                 keep_zeros: bool = False) -> dict:
    """:func:`train` from scratch, or with ``continue_from`` the plateau check: that member's G and D
    (``names``: the architectures the script builds) continued, its score as step 0, the verdict in the provenance.
    ``keep_zeros``: G's zero weights (a pruned checkpoint's) stay zero throughout (:func:`hold_zeros`), so the run
    measures what the sparse generator reaches under the member's own loop with no step budget."""
    from gancompress.errors import InputError

    if keep_zeros and continue_from is None:
        raise InputError("--keep-zeros holds a pruned checkpoint's zeros: give it with --continue-from")
    trained = load_member(continue_from, g, d, *names) if continue_from else None
    held = hold_zeros(g) if keep_zeros else []
    if keep_zeros and not held:
        raise InputError(f"--keep-zeros: {continue_from} has no zero weights in its generator; prune it first "
                         f"(gancompress prune {continue_from} --sparsity 0.9)")
    provenance = train(g, d, task, cfg, log=lambda line: print(line, flush=True), baseline=trained is not None)
    if held:
        provenance["kept_zeros"] = release_zeros(held)
    if trained is not None:
        note_continuation(provenance, continue_from, trained)
    return provenance


def hold_zeros(g: nn.Module) -> list[tuple[nn.Module, str]]:
    """Keep every zero of G's prunable weights (the masks ``gancompress.prune.current_masks`` reads off a pruned
    model) at zero while it trains: a fixed mask on each weight that has zeros (``torch.nn.utils.prune``: the layer
    computes with ``weight_orig * weight_mask``, so a masked weight gets no gradient and no Adam step). Returns the
    masked (layer, weight name) pairs for :func:`release_zeros`."""
    from torch.nn.utils import prune

    from gancompress.prune import current_masks

    held = []
    for key, mask in current_masks(g).items():
        if bool(mask.all()):
            continue
        layer, _, name = key.rpartition(".")
        module = g.get_submodule(layer)
        prune.custom_from_mask(module, name, mask)
        held.append((module, name))
    return held


def release_zeros(held: list[tuple[nn.Module, str]]) -> dict:
    """Fold the masks of :func:`hold_zeros` into plain weights (zeros where masked); returns their sparsity."""
    from torch.nn.utils import prune

    zeros = total = 0
    for module, name in held:
        prune.remove(module, name)
        weight = getattr(module, name)
        zeros, total = zeros + int((weight == 0).sum()), total + weight.numel()
    return {"layers": len(held), "zero_weights": zeros, "weights": total, "sparsity": round(zeros / total, 4)}


def note_continuation(provenance: dict, source: Path, trained: dict) -> None:
    """Add the plateau check's verdict (and ``trained``, the source's provenance: its curve) to a continued run's
    provenance, and say it."""
    verdict = plateau_verdict(provenance)
    provenance["continued_from"] = {"checkpoint": str(source), **verdict, **source_curve(trained)}
    if provenance["continued_from"].get("source_best_step"):  # the steps behind the kept G, counted from the start
        provenance["trained_steps"] = provenance["continued_from"]["source_best_step"] + provenance["best_step"]
    said = "at a plateau" if verdict["at_plateau"] else "NOT at a plateau"
    print(f"{said}: {verdict['steps']} more steps; score {verdict['start_score']:.4g} -> best {verdict['best_score']:.4g} "
          f"(step {verdict['best_step']}), a {verdict['relative_gain']:+.1%} gain against the "
          f"{provenance['loop']['min_delta']:.1%} the stopping rule counts", flush=True)


def source_curve(trained: dict) -> dict:
    """The training curve a checkpoint's provenance records (``curve`` as :func:`train` writes it, or the bundled
    trainer's ``fid_history``) as ``{"source_curve": [[step, score], ...], "source_best_step": N}``; empty without one."""
    import ast

    points = [[r["step"], r["score"]] for r in trained.get("curve", [])]
    if not points and trained.get("fid_history"):
        history = trained["fid_history"]
        history = ast.literal_eval(history) if isinstance(history, str) else history
        points = [[r["step"], r["fid"]] for r in history]
    return {"source_curve": points, "source_best_step": trained.get("best_step")} if points else {}


def load_member(path: Path, g, d, g_name: str, d_name: str) -> dict:
    """Put a member checkpoint's G and D weights into ``g`` and ``d`` (read as every command reads a project file,
    ``module:Callable`` names for the networks gancompress does not know); returns its provenance. A file that is
    not such a member is an :class:`~gancompress.errors.InputError`."""
    from gancompress.archs.base import load_into
    from gancompress.errors import InputError, NetworkMismatch
    from gancompress.loading import LoadOptions, load_bundle

    custom = {key: name for key, name in (("arch", g_name), ("d_arch", d_name)) if ":" in name}
    not_this = f"--continue-from {path}: its networks are not this member's ({g_name}, {d_name})"
    advice = "pass the --member it was trained as"
    try:
        bundle = load_bundle(LoadOptions(source=str(path), **custom))
    except NetworkMismatch:
        # the loader's advice names its own flags (--arch); here the networks come from --member
        raise InputError(f"{not_this}; {advice}") from None
    if bundle.discriminator is None:
        raise InputError(f"--continue-from {path}: it holds no discriminator; continue a checkpoint this script wrote")
    try:  # the loader's strict load, with its readable key/shape diff
        load_into(g, bundle.generator.state_dict(), f"generator {g_name}")
        load_into(d, bundle.discriminator.state_dict(), f"discriminator {d_name}")
    except NetworkMismatch as exc:
        raise InputError(f"{not_this}: {exc}; {advice}") from None
    return bundle.meta.get("provenance", {})


def cli(main: Callable[[], int]) -> int:
    """A training script as a command: a refused input is one ``error:`` line on stderr and exit 2, no traceback."""
    from gancompress.errors import InputError

    try:
        return main()
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


# --------------------------------------------------------------------------- rulers


class DigitsFid:
    """digits-FID as the bundled GAN's trainer measures it: the bundled classifier's features of ``n``
    generated digits (fixed latents, uniform labels for a conditional G) against all 1,797 real ones."""

    def __init__(self, n: int = 2000, seed: int = 10_000) -> None:
        from gancompress.data.digits import digits_images
        from gancompress.metrics.digits_classifier import load_digits_classifier

        self.clf = load_digits_classifier()
        self.real_fit = gaussian_fit(classifier_features(self.clf, digits_images(16)))
        gen = torch.Generator().manual_seed(seed)
        self.z = torch.randn(n, 32, generator=gen)
        self.labels = torch.randint(10, (n,), generator=gen)

    def __call__(self, g, conditional: bool = False) -> float:
        z = self.z.reshape(len(self.z), *g.input_shape) if hasattr(g, "input_shape") else self.z[:, :, None, None]
        fake = torch.cat([call(g, z[i:i + 500], self.labels[i:i + 500] if conditional else None)
                          for i in range(0, len(z), 500)])
        return frechet_distance(*gaussian_fit(classifier_features(self.clf, fake)), *self.real_fit)


def digits_real(labels: bool = False) -> Callable:
    """``real(batch, gen)`` over the 1,797 digits (16x16, [-1, 1]), with their classes when ``labels``."""
    from gancompress.data.digits import digits_images, digits_labels

    images, classes = digits_images(16), digits_labels()

    def real(batch: int, gen: torch.Generator):
        idx = torch.randint(len(images), (batch,), generator=gen)
        return images[idx], (classes[idx] if labels else None)
    return real


def latents(shape: tuple[int, ...], num_classes: int | None = None) -> Callable:
    def inputs(batch: int, gen: torch.Generator):
        z = torch.randn(batch, *shape, generator=gen)
        return z, (torch.randint(num_classes, (batch,), generator=gen) if num_classes else None), None
    return inputs


# --------------------------------------------------------------------------- outputs


def write_curve(provenance: dict, out: Path, metric: str) -> list[Path]:
    """``<out>.curve.csv``, ``<out>.train.json`` and, with matplotlib, ``<out>.curve.png``."""
    stem = out.with_suffix("")
    written = [stem.with_suffix(".curve.csv"), stem.with_suffix(".train.json")]
    with open(written[0], "w", newline="") as f:
        rows = csv.DictWriter(f, fieldnames=["step", "score", "loss_d", "loss_g", "seconds", "lr_scale"])
        rows.writeheader()
        rows.writerows(provenance["curve"])
    written[1].write_text(json.dumps(provenance, indent=2) + "\n")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return written
    fig, ax = plt.subplots(figsize=(5.6, 3.4), dpi=100)
    source = provenance.get("continued_from", {})
    offset = source.get("source_best_step") or 0 if source.get("source_curve") else 0
    if offset:  # the plateau check: the member's own curve, then the continuation from its best step
        ax.plot(*zip(*source["source_curve"]), marker=".", color="gray", label="trained")
    ax.plot([offset + r["step"] for r in provenance["curve"]], [r["score"] for r in provenance["curve"]], marker="o",
            label="continued" if offset else None)
    ax.axvline(offset + provenance["best_step"], color="gray", linestyle="--",
               label=f"best (step {offset + provenance['best_step']})")
    curve = provenance["curve"]
    for before, row in zip(curve, curve[1:]):  # reduce-on-plateau: where the learning rates went down
        if row.get("lr_scale", 1.0) != before.get("lr_scale", 1.0):
            ax.axvline(offset + before["step"], color="tab:orange", linestyle=":", label=f"lr x{row['lr_scale']:g}")
    if all(r["score"] > 0 for r in curve) and all(v > 0 for _, v in source.get("source_curve", [])):
        from matplotlib.ticker import FuncFormatter

        ax.set_yscale("log")  # a FID falls by orders of magnitude: the plateau is visible only on a log axis
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))  # 10, not 10^1
        ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:g}"[0] in "25" else ""))
    ax.set_xlabel("training step")
    ax.set_ylabel(metric)
    ax.set_title(f"{stem.name}: {metric} while training")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(stem.with_suffix(".curve.png"))
    plt.close(fig)
    return written + [stem.with_suffix(".curve.png")]


def finish(g, g_spec, d, d_spec, provenance: dict, out: Path, metric: str, force: bool = False) -> None:
    """Save G and D as a project checkpoint at ``out`` (G and D in eval mode) and the curve beside it."""
    from gancompress.formats.checkpoint import GanBundle, save_bundle

    out.parent.mkdir(parents=True, exist_ok=True)
    provenance = {**provenance, "torch": torch.__version__,
                  "g_params": sum(p.numel() for p in g.parameters()), "d_params": sum(p.numel() for p in d.parameters())}
    save_bundle(GanBundle(g.eval(), g_spec, d.eval(), d_spec, meta={"provenance": provenance}), out, force=force)
    files = write_curve(provenance, out, metric)
    print(f"best {metric} {provenance['best_score']:.3f} at step {provenance['best_step']} of {provenance['steps']}; "
          f"wrote {out} and {', '.join(p.name for p in files)}")


def custom_spec(target: str, kwargs: dict, role: str = "generator"):
    """The recorded architecture of a ``zoo_nets`` network (what ``--arch``/``--d-arch`` records)."""
    from gancompress.loading import LoadOptions

    options = LoadOptions(arch=target, arch_kwargs=kwargs) if role == "generator" else \
        LoadOptions(d_arch=target, d_arch_kwargs=kwargs)
    return options.custom_spec(role)


LOOP_HELP = {
    "max_steps": "stop here even if the score still improves",
    "batch": "images per step",
    "lr_g": "Adam learning rate of G",
    "lr_d": "Adam learning rate of D",
    "loss": "the GAN loss: ns (non-saturating) or hinge",
    "r1_gamma": "weight of D's R1 penalty on real images; 0: none",
    "r1_every": "apply R1 every this many steps (lazy R1)",
    "eval_every": "score G every this many steps",
    "adv_weight": "weight of G's adversarial term",
    "patience": "evaluations without a --min-delta gain before the rates drop (--lr-decays) or training stops",
    "min_delta": "relative improvement of the score that counts as better",
    "seed": "seed of the weights, latents and batches",
    "lr_decays": "reduce-on-plateau: how often patience running out halves the rates (back to the best G and D) "
                 "before it stops training",
    "lr_decay": "the factor each reduce-on-plateau applies to both rates",
}


def loop_arguments(parser, **defaults) -> None:
    """The options every script shares (``defaults`` override LoopConfig's per member)."""
    base = {**asdict(LoopConfig()), **defaults}
    for name, value in base.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value,
                            help=f"{LOOP_HELP[name]} (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--continue-from", type=Path, default=None, metavar="CHECKPOINT",
                        help="the plateau check: continue this trained member (its G and D, fresh optimizers) with the "
                             "same loop; its score is step 0 and the best to beat, so the run stops after --patience "
                             "evaluations that do not beat it by --min-delta (then it was at a plateau)")
    parser.add_argument("--keep-zeros", action="store_true",
                        help="with --continue-from a pruned checkpoint (gancompress prune): its zero weights stay zero, "
                             "so the run shows what the sparse generator reaches under the member's own loop, with no "
                             "step budget (the zoo's own-loop control; not a capacity ceiling: docs/zoo.md)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing checkpoint")


def loop_config(args) -> LoopConfig:
    from gancompress.errors import InputError

    try:
        return LoopConfig(**{k: getattr(args, k) for k in asdict(LoopConfig())})
    except ValueError as exc:
        raise InputError(str(exc)) from None

#!/usr/bin/env python
"""Train the bundled ``builtin:digits-dcgan``: a small DCGAN on scikit-learn's digits at 16x16.

Non-saturating (softplus) GAN loss, Adam, and a lazy R1 gradient penalty on the
discriminator (without it D memorises the 1,797 digits and the generator degrades after
~2,000 steps). Every ``--eval-every`` steps the generator (in eval mode, as the tool uses
it) is scored with digits-FID: the Frechet distance between Gaussian fits of the bundled
digits classifier's penultimate features of ``--fid-samples`` generated digits and of all
1,797 real ones. The best-scoring checkpoint is written with ``gancompress.formats.checkpoint.save_bundle``
to ``gancompress/assets/digits_dcgan.safetensors`` and an 8x8 sample grid to
``examples/digits_samples.png``.

Run ``examples/train_digits_extractor.py`` first (the FID needs the classifier).

    python examples/train_digits_gan.py                 # the bundled model: seed 0, ngf 64, 8,000 steps (~21 min, 1 thread)
"""
from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gancompress.archs import ArchSpec  # noqa: E402
from gancompress.archs.digits import DigitsDiscriminator, DigitsGenerator  # noqa: E402
from gancompress.formats.checkpoint import GanBundle, save_bundle  # noqa: E402
from gancompress.data.digits import digits_images  # noqa: E402
from gancompress.metrics.digits_classifier import load_digits_classifier  # noqa: E402

DEFAULT_OUT = REPO / "gancompress" / "assets" / "digits_dcgan.safetensors"
DEFAULT_PNG = REPO / "examples" / "digits_samples.png"


# --------------------------------------------------------------------------- FID helper
def gaussian_fit(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    feats = np.asarray(feats, dtype=np.float64)
    return feats.mean(axis=0), np.cov(feats, rowvar=False)


def frechet_distance(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray) -> float:
    """||mu1-mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1^1/2 S2 S1^1/2)^1/2), via symmetric eigendecompositions."""
    w, v = np.linalg.eigh(s1)
    s1_half = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    m = s1_half @ s2 @ s1_half
    tr_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum()
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt)


@torch.no_grad()
def classifier_features(clf, images: torch.Tensor, batch: int = 500) -> np.ndarray:
    return torch.cat([clf.features(images[i:i + batch]) for i in range(0, len(images), batch)]).numpy()


@torch.no_grad()
def generate(g: DigitsGenerator, n: int, nz: int, seed: int, batch: int = 500) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(n, nz, 1, 1, generator=gen)
    was_training = g.training
    g.eval()
    out = torch.cat([g(z[i:i + batch]) for i in range(0, n, batch)])
    g.train(was_training)
    return out


# --------------------------------------------------------------------------- sample grid
def save_grid(images: torch.Tensor, path: Path, nrow: int = 8, upscale: int = 4, pad: int = 2) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    imgs = ((images[:, 0].clamp(-1, 1) + 1) / 2).numpy()  # (N, H, W) in [0, 1]
    n, h, w = imgs.shape
    ncol = -(-n // nrow)
    grid = np.ones((nrow * (h + pad) + pad, ncol * (w + pad) + pad), dtype=np.float32)
    for k in range(n):
        r, c = divmod(k, ncol)
        grid[pad + r * (h + pad):pad + r * (h + pad) + h, pad + c * (w + pad):pad + c * (w + pad) + w] = imgs[k]
    grid = np.kron(grid, np.ones((upscale, upscale), dtype=np.float32))
    path.parent.mkdir(parents=True, exist_ok=True)
    plt.imsave(path, grid, cmap="gray", vmin=0.0, vmax=1.0)


# --------------------------------------------------------------------------- training
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=8000, help="generator/discriminator steps (default 8000)")
    p.add_argument("--nz", type=int, default=32)
    p.add_argument("--ngf", type=int, default=64, help="generator width (default 64, 0.79M params; 32: 0.23M, ~2x faster per step)")
    p.add_argument("--ndf", type=int, default=32)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--r1-gamma", type=float, default=1.0)
    p.add_argument("--r1-every", type=int, default=4)
    p.add_argument("--eval-every", type=int, default=500)
    p.add_argument("--fid-samples", type=int, default=2000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--samples-png", type=Path, default=DEFAULT_PNG)
    p.add_argument("--force", action="store_true", help="overwrite existing outputs (the bundled files by default)")
    args = p.parse_args(argv)
    existing = [str(o) for o in (args.out, args.samples_png,) if o.exists()]
    if existing and not args.force:
        p.error(f"{', '.join(existing)} already exist(s); pass --force to overwrite (or choose --out)")

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    data_gen = torch.Generator().manual_seed(args.seed + 1)

    real = digits_images(16)
    clf = load_digits_classifier()
    mu_r, s_r = gaussian_fit(classifier_features(clf, real))

    g = DigitsGenerator(nz=args.nz, ngf=args.ngf, nc=1)
    d = DigitsDiscriminator(ndf=args.ndf, nc=1)
    g_params = sum(t.numel() for t in g.parameters())
    d_params = sum(t.numel() for t in d.parameters())
    betas = (0.5, 0.999)
    opt_g = torch.optim.Adam(g.parameters(), lr=args.lr, betas=betas)
    # lazy R1: scale the Adam betas/lr as in StyleGAN2 so the effective regularisation stays the same
    c = args.r1_every / (args.r1_every + 1)
    opt_d = torch.optim.Adam(d.parameters(), lr=args.lr * c, betas=(betas[0] ** c, betas[1] ** c))
    print(f"digits DCGAN: G ngf={args.ngf} nz={args.nz} {g_params:,} params; D ndf={args.ndf} {d_params:,} params; "
          f"{len(real)} real digits; {args.steps} steps, batch {args.batch}, seed {args.seed}")

    def fid_now(step: int) -> float:
        fake = generate(g, args.fid_samples, args.nz, seed=10_000 + args.seed)
        return frechet_distance(*gaussian_fit(classifier_features(clf, fake)), mu_r, s_r)

    history: list[dict] = []
    best = {"fid": float("inf"), "step": 0, "g": None, "d": None}
    perm, pos = torch.randperm(len(real), generator=data_gen), 0
    t0 = time.time()
    log = {"d": 0.0, "g": 0.0, "r1": 0.0, "n": 0}
    for step in range(1, args.steps + 1):
        if pos + args.batch > len(real):
            perm, pos = torch.randperm(len(real), generator=data_gen), 0
        x = real[perm[pos:pos + args.batch]]
        pos += args.batch

        # discriminator
        z = torch.randn(args.batch, args.nz, 1, 1)
        with torch.no_grad():
            fake = g(z)
        loss_d = F.softplus(d(fake)).mean() + F.softplus(-d(x)).mean()
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        r1_val = None
        if args.r1_gamma > 0 and step % args.r1_every == 0:
            xr = x.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(d(xr).sum(), xr, create_graph=True)
            r1 = grad.pow(2).flatten(1).sum(1).mean()
            (0.5 * args.r1_gamma * args.r1_every * r1).backward()
            r1_val = r1.item()
        opt_d.step()

        # generator
        z = torch.randn(args.batch, args.nz, 1, 1)
        loss_g = F.softplus(-d(g(z))).mean()
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()

        log["d"] += loss_d.item()
        log["g"] += loss_g.item()
        log["n"] += 1
        if r1_val is not None:
            log["r1"] = r1_val
        if step % 250 == 0 and step % args.eval_every != 0:
            print(f"step {step:5d}  D {log['d'] / log['n']:.3f}  G {log['g'] / log['n']:.3f}  "
                  f"R1 {log['r1']:.3f}  ({time.time() - t0:.0f}s)", flush=True)
            log.update(d=0.0, g=0.0, n=0)
        if step % args.eval_every == 0 or step == args.steps:
            fid = fid_now(step)
            history.append({"step": step, "fid": round(fid, 4), "seconds": round(time.time() - t0, 1)})
            mark = ""
            if fid < best["fid"]:
                best.update(fid=fid, step=step, g=copy.deepcopy(g.state_dict()), d=copy.deepcopy(d.state_dict()))
                mark = "  * best"
            print(f"step {step:5d}  D {log['d'] / max(1, log['n']):.3f}  G {log['g'] / max(1, log['n']):.3f}  "
                  f"R1 {log['r1']:.3f}  digits-FID {fid:.3f}{mark}  ({time.time() - t0:.0f}s)", flush=True)
            log.update(d=0.0, g=0.0, n=0)
    train_s = time.time() - t0

    g.load_state_dict(best["g"])
    d.load_state_dict(best["d"])
    g.eval()
    d.eval()
    provenance = {
        "script": "examples/train_digits_gan.py",
        "data": "sklearn.datasets.load_digits, 1797 digits, bilinear-upscaled to 16x16, [-1,1] (gancompress.data.digits)",
        "latent": f"standard normal, shape ({args.nz}, 1, 1)",
        "loss": "non-saturating (softplus)",
        "r1_gamma": args.r1_gamma, "r1_every": args.r1_every,
        "optimizer": {"name": "Adam", "lr": args.lr, "betas": list(betas), "d_lazy_reg_scaled": True},
        "batch": args.batch, "steps": args.steps, "best_step": best["step"], "seed": args.seed,
        "g_params": g_params, "d_params": d_params,
        "fid_digits": round(best["fid"], 4),
        "fid_definition": f"Frechet distance, digits-classifier features ({clf.feature_dim}-d), "
                          f"{args.fid_samples} samples (eval-mode G) vs all 1797 real digits",
        "fid_history": history,
        "train_seconds": round(train_s, 1),
        "torch": torch.__version__,
    }
    bundle = GanBundle(g, ArchSpec("digits-dcgan-g", {"nz": args.nz, "ngf": args.ngf, "nc": 1}),
                       d, ArchSpec("digits-dcgan-d", {"ndf": args.ndf, "nc": 1}),
                       meta={"provenance": provenance})
    save_bundle(bundle, args.out, force=args.force)
    save_grid(generate(g, 64, args.nz, seed=123), args.samples_png)
    print(f"best digits-FID {best['fid']:.3f} at step {best['step']}; trained {train_s:.0f}s; "
          f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB) and {args.samples_png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

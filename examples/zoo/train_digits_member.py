#!/usr/bin/env python
"""Train one digits member of the zoo (16x16, scikit-learn's 1,797 digits) until its digits-FID stops improving.

Members:

  bundled       the bundled DCGAN's architecture (0.79M generator parameters) retrained to a plateau; the
                package's asset (``examples/train_digits_gan.py``, 8,000 steps with this loop) was still improving

  narrow-dcgan  the bundled architecture (``digits-dcgan-g``/``-d``, built in) at ngf 30: 206k generator
                parameters; non-saturating loss + lazy R1
  upsample-sn   ``zoo_nets:UpsampleGenerator`` (linear stem, upsample + conv) and
                ``zoo_nets:SNDiscriminator`` (spectral norm), hinge loss, no R1
  conditional   ``zoo_nets:ConditionalGenerator`` (``forward(z, labels)``) and
                ``zoo_nets:ProjectionDiscriminator``, non-saturating loss + lazy R1, the digits' classes

Every ``--eval-every`` steps digits-FID (2,000 samples, the bundled trainer's ruler) is measured;
after ``--patience`` evaluations without a 2% improvement G and D go back to their best with both
learning rates halved, ``--lr-decays`` times (2 for every member), and
then training stops. The best G and D are written to ``--out`` (default
``runs/zoo/members/<member>.safetensors``) with the curve beside it (``.curve.csv``, ``.curve.png``,
``.train.json``). Deterministic on the CPU for a seed and a thread count (``--threads``, default 1).

    OMP_NUM_THREADS=1 python examples/zoo/train_digits_member.py --member narrow-dcgan

The plateau check continues a trained member with the same loop (fresh optimizers) and says whether
any of ``--patience`` evaluations beat it by ``--min-delta`` (written to ``runs/zoo/continued/``;
``--lr-decays 0`` asks the plain stopping rule):

    python examples/zoo/train_digits_member.py --member narrow-dcgan --continue-from examples/zoo/members/narrow-dcgan.safetensors

The own-loop control continues a pruned member with its zeros held (``--keep-zeros``): what the sparse
generator reaches under the member's own loop with no step budget (not a capacity ceiling: distillation
beats it on narrow-dcgan, docs/zoo.md):

    gancompress prune examples/zoo/members/narrow-dcgan.safetensors -s 0.9 --importance bn-scaled -o narrow90.safetensors
    python examples/zoo/train_digits_member.py --member narrow-dcgan --continue-from narrow90.safetensors --keep-zeros
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

import zoo_train
from zoo_train import REPO, DigitsFid, Task, digits_real, latents

MEMBERS = {
    # the package's asset (gancompress/assets/digits_dcgan.safetensors) came from examples/train_digits_gan.py with this
    # very loop (non-saturating loss, lazy R1, Adam 2e-4) stopped at 8,000 steps; the zoo's member goes on to a plateau
    "bundled": {"g": ("digits-dcgan-g", {"nz": 32, "ngf": 64, "nc": 1}), "d": ("digits-dcgan-d", {"ndf": 32, "nc": 1}),
                "loop": {"lr_decays": 2, "max_steps": 40_000}},
    # reduce-on-plateau twice, so the rule (not a step cap) ends training; the caps sit well above where it did
    "narrow-dcgan": {"g": ("digits-dcgan-g", {"nz": 32, "ngf": 30, "nc": 1}), "d": ("digits-dcgan-d", {"ndf": 32, "nc": 1}),
                     "loop": {"lr_decays": 2, "max_steps": 40_000}},
    "upsample-sn": {"g": ("zoo_nets:UpsampleGenerator", {"nz": 32, "ngf": 32}), "d": ("zoo_nets:SNDiscriminator", {"ndf": 32}),
                    "loop": {"loss": "hinge", "r1_gamma": 0.0, "lr_d": 4e-4, "lr_g": 1e-4, "lr_decays": 2, "max_steps": 30_000}},
    "conditional": {"g": ("zoo_nets:ConditionalGenerator", {"nz": 32, "ngf": 32, "num_classes": 10}),
                    "d": ("zoo_nets:ProjectionDiscriminator", {"ndf": 32, "num_classes": 10}),
                    "loop": {"lr_decays": 2, "max_steps": 30_000}},
}


def build(name: str, kwargs: dict, role: str):
    """The network and the spec gancompress records for it (built-in name, or ``module:Callable``)."""
    from gancompress.archs import ArchSpec
    from gancompress.archs import build as build_builtin

    if ":" not in name:
        return build_builtin(ArchSpec(name, kwargs)), ArchSpec(name, kwargs)
    import zoo_nets

    net = getattr(zoo_nets, name.split(":")[1])(**kwargs)
    return net, zoo_train.custom_spec(name, kwargs, role)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    p.add_argument("--member", choices=sorted(MEMBERS), required=True,
                   help="the loop options' defaults are this member's (see --member NAME --help)")
    p.add_argument("--fid-samples", type=int, default=2000)
    p.add_argument("--out", type=Path, default=None)
    # the member picks the loop's defaults, so it is read first, without -h ending the run before they exist
    member_only = argparse.ArgumentParser(add_help=False)
    member_only.add_argument("--member", choices=sorted(MEMBERS))
    known, _ = member_only.parse_known_args(argv)
    zoo_train.loop_arguments(p, **MEMBERS[known.member or "narrow-dcgan"]["loop"])
    args = p.parse_args(argv)
    folder = "continued" if args.continue_from else "members"
    out = args.out or REPO / "runs" / "zoo" / folder / f"{args.member}.safetensors"
    if out.exists() and not args.force:
        p.error(f"{out} exists; pass --force to overwrite it (or choose --out)")
    torch.set_num_threads(args.threads)
    cfg = zoo_train.loop_config(args)
    torch.manual_seed(cfg.seed)
    member = MEMBERS[args.member]
    (g, g_spec), (d, d_spec) = build(*member["g"], "generator"), build(*member["d"], "discriminator")
    classes = member["g"][1].get("num_classes")
    shape = getattr(g, "input_shape", (member["g"][1]["nz"], 1, 1))
    fid = DigitsFid(args.fid_samples)
    task = Task(real=digits_real(labels=bool(classes)), inputs=latents(shape, classes),
                score=lambda net: fid(net, conditional=bool(classes)))
    print(f"{args.member}: G {sum(t.numel() for t in g.parameters()):,} params, D {sum(t.numel() for t in d.parameters()):,}; "
          f"{cfg}")
    provenance = zoo_train.train_member(g, d, task, cfg, args.continue_from, (member["g"][0], member["d"][0]),
                                        keep_zeros=args.keep_zeros)
    provenance.update(member=args.member, script="examples/zoo/train_digits_member.py", data="builtin:digits (16x16)",
                      metric=f"digits-FID, {args.fid_samples} samples vs the 1,797 real digits")
    zoo_train.finish(g, g_spec, d, d_spec, provenance, out, "digits-FID", force=args.force)
    return 0


if __name__ == "__main__":
    raise SystemExit(zoo_train.cli(main))

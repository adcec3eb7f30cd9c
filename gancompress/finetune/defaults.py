"""Default options of a fine-tuning run, in one torch-free place (the CLI imports it for --help).

Settled by ``benchmarks/reproduce_paper.py`` on the bundled digits DCGAN (788k-parameter
generator trained 7,500 steps; dense digits-FID 6.46 at 5,000 samples): sparsity of ALL conv
weights (output layer dense), AGP, a 750-step budget (10% of training), the same optimizer
settings for every method (lr_g 2e-3 held during the AGP ramp then cosine-annealed to 0, lr_d
2e-4, mu 10, adv weight 1), FID mean ± std over 3 seeds:

  sparsity              50%             75%              90%
  distill-adv      4.20 ± 0.10     4.35 ± 0.09      5.05 ± 0.09   (0.78x dense at 90%; 1.21x its dense control)
  distill          6.52 ± 0.03     6.59 ± 0.01      7.05 ± 0.04   (1.09x)
  hybrid (mu 10)   6.75 ± 0.11     6.90 ± 0.14      7.78 ± 0.10
  self-supervised  17.56 ± 1.16    45.05 ± 43.24    27.44 ± 2.84  (23.09 ± 2.19 at lr_g 2e-4 constant)
  finetune         324.7 ± 11.0    314.8 ± 19.6     287.2 ± 4.7   (30.02 ± 4.01 at lr_g 2e-4 constant)
  none (one-shot)  6.86            15.04            75.88

The per-sample L1 to the teacher is what recovers (the paper's batch-mean consistency terms add
noise in hybrid, and do not recover alone); the discriminator helps when its own GAN loss is
added to that L1 (distill-adv): D keeps training on real images, so the student is pulled
towards the data, not only towards the teacher, and ends better than the teacher. Part of that
gain is the extra adversarial training itself: the DENSE model given the same 750 steps of
distill-adv scores 4.19 ± 0.06, so 90% costs 1.21x against it (25-50%: nothing). The
adversarial weight at 90%, 2,000 samples (distill 7.20, dense 6.66 on that ruler): 0.03 6.23
(1 seed), 0.1 5.77 (2), 0.3 5.37 (3), 1 5.14 (3), 3 5.15 (2: 5.46 / 4.84), 10 6.46 (1); the L1
to the teacher grows with it. Its rates (seed 0, 5.25 at the defaults): lr_g 1e-3 5.54, 4e-3
5.14; lr_d 1e-3 6.30. distill remains the choice when there is no discriminator or no data
(it needs neither), or when the output must match the teacher's per input.

The schedule is the other lever: at 90%, 750 steps, distill with lr_g 5e-4 constant gave 7.62
(2 seeds) against 7.05 annealed from 2e-3; on the earlier 230k-parameter bundled GAN (375
steps, 2,000 samples, dense 13.90) 18.86 ± 0.31 against 16.05 ± 0.13 (4 seeds). lr_g 4e-3 did
as well as 2e-3; 8e-3 diverged. Capacity is the third: the 230k model stayed at 1.15x of dense
at 90% with distill, the 788k model reaches 1.09x.
"""
# The zoo (benchmarks/zoo.py, docs/zoo.md) picked the default. Against a dense control that gets the same recovery, at
# 90% element with the 10-step warm-up (3 seeds, 5,000 samples), hybrid (then at mu 30 and lr_d 2e-4; both retuned since, below) is the best by mean and by worst
# case over the four noise-input members: 1.27x / 1.52x vs distill's 1.40x / 1.98x (distill-adv 1.63x / 2.31x; its better absolute
# FID is continued training of the GAN: its dense controls improve the teachers by 22-54%), and over all five cells.
# Its lead comes from the members with a projection or spectral-norm discriminator (conditional 1.33x vs 1.85x); on
# the bundled DCGAN distill stays ahead (1.07x vs 1.10x; narrow DCGAN 1.49x both). hybrid needs a discriminator and real
# images, distill neither, so the default "auto" takes hybrid when both are at hand and distill otherwise, and says
# which (finetune's notes, the result's method). distill, hybrid and distill-adv stay one flag away.
DEFAULT_METHOD = "auto"
DEFAULT_STEPS = 750  # the benchmark budget: 10% of the bundled GAN's 7,500 training steps
DEFAULT_BATCH_SIZE = 64  # every method but hybrid (--batch-size overrides it for all)
# hybrid's batch, twice the others' (docs/zoo.md, "A bigger batch for hybrid"). Against the retrained zoo members
# at 90% element, 15% budget (the same number of steps), 3 seeds, 5,000 samples, the teacher as the dense control,
# measured on one CPU: narrow 1.55x, conditional 1.32x, upsample-sn 1.09x (worst seeds 1.57x, 1.34x, 1.105x) where
# 64 gave 1.64x, 1.44x, 1.12x (1.65x, 1.50x, 1.12x); the bundled DCGAN 1.09x (3 seeds) vs 1.11x (seed 0). Each step
# costs about twice as much, but twice the steps at 64 (the same compute) read narrow 1.61x and conditional 1.63x
# (seed 0; 1.52x, 1.31x at 128): the larger step, not the compute, is what helps (more steps make hybrid worse, see
# --steps in the README). Beyond 90% it loses one cell measured, conditional's 80% element (1.33x vs 1.29x, 3 seeds);
# narrow and upsample-sn (seed 0) and conditional's 75% filter (3 seeds) gain.
DEFAULT_BATCH_SIZE_HYBRID = 128
DEFAULT_LR_G = 2e-3
DEFAULT_LR_D = 2e-4  # D's Adam rate for every method but hybrid (--lr-d overrides it for all)
# hybrid's D rate, 10x lower (docs/zoo.md, "A slower discriminator"). Against the retrained zoo members at 90% element,
# 15% budget, 3 seeds, 5,000 samples, the teacher as the dense control, at mu 30: narrow 1.66x, upsample-sn 1.25x, conditional 1.68x
# (mean 1.53x, worst seed 1.73x) where 2e-4 gave 2.30x / 1.22x / 2.11x (1.88x, 2.36x), D frozen 1.73x (2.15x) and distill
# 1.75x (2.27x). A D that trains at 2e-4 drifts from the verdicts the consistency terms compare, and the drift grows with
# the budget; a frozen one cannot follow the student's fakes at all.
DEFAULT_LR_D_HYBRID = 2e-5
DEFAULT_BETAS = (0.5, 0.999)
# lr_g over the run: "constant", or "cosine" (held while AGP prunes, then cosine-annealed to 0
# over the remaining steps; the whole run when the input is already pruned).
LR_SCHEDULES = ("constant", "cosine")
DEFAULT_LR_SCHEDULE = "cosine"
# Steps of linear lr_g warm-up (0: none). The zoo (docs/zoo.md, "lr warm-up") found members that a full-rate first
# step kills: Adam moves every weight by about lr_g at once (20x the rate they were trained at) and the output tanh
# saturates for good (upsample-sn at 50%/75% filter: 34x its dense control without a warm-up, 1.03x/1.09x with 10
# steps). Longer is not better: 50 steps also cured it but cost 2-25% on the cells that never collapsed (AGP prunes
# hardest in its first steps, when a warm-up holds the learning rate down).
DEFAULT_LR_WARMUP = 10
DEFAULT_LAMBDA = 0.5
# hybrid's weight of the per-sample L1 to the teacher beside the paper's terms. Rescanned with D at 2e-5 (docs/zoo.md,
# "mu again, with the slower D"): against the retrained members at 90% element, 15% budget, 3 seeds, 5,000 samples, the
# teacher as the dense control, mu 3 reads narrow 1.65x, upsample-sn 1.12x, conditional 1.45x (mean 1.41x, worst seed
# 1.72x) where mu 30 read 1.66x, 1.25x, 1.68x (1.53x, 1.73x); seed 0: mu 1 1.70x / 1.42x (narrow / conditional), mu 10
# 1.65x / 1.19x / 1.56x, mu 100 1.72x / 1.28x / 1.77x; the bundled DCGAN 1.08x (mu 30: 1.05x), the SR member -0.01 dB
# (+0.01 dB). With D at 2e-4, mu 30 had been the pick (mu 3 then cost the narrow DCGAN 2.34x): a D that drifts makes the
# consistency terms noise, a slow one makes them worth a larger share.
DEFAULT_MU = 3.0  # hybrid only
DEFAULT_ADV_WEIGHT = 1.0  # distill-adv only: weight of the GAN's own G loss beside the L1 to the teacher
# The adversarial term's weight over the run (methods with an ``adv`` term: distill-adv, finetune):
# "constant"; "ramp" from 0 to the full weight over the AGP ramp, then held; "decay" held over the
# ramp, then linearly to 0 after the last step. D_WARMUP: the first steps in which D trains on real
# images vs G_C's fakes while G_C's adversarial term counts for nothing (0: off).
ADV_SCHEDULES = ("constant", "ramp", "decay")
DEFAULT_ADV_SCHEDULE = "constant"
DEFAULT_D_WARMUP = 0
DEFAULT_RAMP_FRACTION = 0.5
# How sweep/demo/benchmark reach the target sparsity: "agp" prunes the dense model gradually
# while it recovers (5% -> target by DEFAULT_RAMP_FRACTION of the steps, the paper's schedule);
# "oneshot" prunes first and recovers the pruned model with fixed masks.
SCHEDULES = ("agp", "oneshot")
DEFAULT_SCHEDULE = "agp"
DEFAULT_INITIAL_SPARSITY = 0.05
# What ranks the weights when recovery prunes (finetune --sparsity, sweep, demo): the zoo's pick, bn-scaled
# (|w| times the next BatchNorm's eval-mode scale; plain magnitude where no BatchNorm follows a layer):
# with hybrid at mu 30 better in 14 of 20 cells of four GANs (mean 1.25x vs 1.28x, worst 2.02x vs 2.22x).
# `prune` alone keeps magnitude, which did better one-shot without recovery on two of the four;
# --coupled ranks filter groups by magnitude.
DEFAULT_IMPORTANCE = "bn-scaled"


def recovery_importance(given: str | None, coupled: bool = False) -> str:
    """``--importance`` of a pruning recovery run: the one given, else the recipe's (magnitude with --coupled)."""
    return given if given is not None else ("magnitude" if coupled else DEFAULT_IMPORTANCE)


DEFAULT_LOG_EVERY = 10
DEFAULT_SAMPLE_EVERY = 250
DEFAULT_SAVE_EVERY = 500
DEFAULT_R1_EVERY = 4
# StyleGAN2's path-length regulariser on G_C: off during recovery (StyleGAN2 trains with weight 2),
# lazily every 4 steps when --pl-weight turns it on
DEFAULT_PL_WEIGHT = 0.0
DEFAULT_PL_EVERY = 4
DEFAULT_STUDENT_MODE = "eval"
STUDENT_MODES = ("eval", "train")

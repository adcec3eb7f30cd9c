"""Default options of a fine-tuning run, in one torch-free place (the CLI imports it for --help).

The lead sets the final values from the reproduction benchmark.
"""
METHOD_NAMES = ("self-supervised", "finetune", "distill", "hybrid", "none")
DEFAULT_METHOD = "hybrid"
DEFAULT_STEPS = 750
DEFAULT_BATCH_SIZE = 64
DEFAULT_LR_G = 5e-4
DEFAULT_LR_D = 2e-4
DEFAULT_BETAS = (0.5, 0.999)
DEFAULT_LAMBDA = 0.5
DEFAULT_MU = 1.0
DEFAULT_RAMP_FRACTION = 0.5
DEFAULT_INITIAL_SPARSITY = 0.05
DEFAULT_LOG_EVERY = 10
DEFAULT_SAMPLE_EVERY = 250
DEFAULT_SAVE_EVERY = 500
DEFAULT_R1_EVERY = 4
DEFAULT_STUDENT_MODE = "eval"
STUDENT_MODES = ("eval", "train")

"""Precision and accelerator names: one table for the runtime and the command line.

    normalize_precision("bf16")        # -> "bf16-mixed"
    normalize_accelerator("cuda")      # -> "gpu"
    PRECISIONS                         # every spelling `--precision` and `Trainer` accept

Torch-free, so `launch --help` can list the names without importing torch.
"""

from __future__ import annotations

from launcher.errors import UserError

# Every accepted spelling -> our canonical precision name: Lightning's first, then the rest.
PRECISION_ALIASES = {
    "32": "32-true", "32-true": "32-true", "16": "16-mixed", "16-mixed": "16-mixed",
    "bf16": "bf16-mixed", "bf16-mixed": "bf16-mixed", "8": "fp8", "fp8": "fp8",
    "fp32": "32-true", "fp16": "16-mixed", "8-mixed": "fp8",
    "bf16-true": "bf16-true", "16-true": "16-true", "64-true": "64-true", "64": "64-true",
}  # fmt: skip
PRECISIONS = tuple(PRECISION_ALIASES)
CANONICAL_PRECISIONS = ("32-true", "16-mixed", "bf16-mixed", "fp8", "bf16-true", "16-true",
                        "64-true")  # fmt: skip
# Lightning's precision values we do not have, and why.
UNSUPPORTED_PRECISIONS = {
    "transformer-engine": "NVIDIA Transformer Engine is not integrated; use fp8 (torchao)",
    "transformer-engine-float16": "NVIDIA Transformer Engine is not integrated; use fp8 (torchao)",
}

# What `--strategy` offers (DDP is the default); the Trainer also takes Lightning's "auto"
# and "ddp_find_unused_parameters_*".
STRATEGIES = ("ddp", "fsdp")
# What `--compile` and `Trainer(compile=)` take as words: the model's forward, each block's, off.
COMPILE_MODES = ("model", "blocks", "off")

# What `--accelerator` offers; the Trainer also takes torch's "cuda" for "gpu".
ACCELERATORS = ("auto", "cpu", "gpu")
_ACCELERATOR_ALIASES = {**{name: name for name in ACCELERATORS}, "cuda": "gpu"}


def normalize_precision(value: str | int | None) -> str:
    """Map any accepted spelling (32, 16, "bf16", 8, "fp16"...) onto a canonical name."""
    key = "32" if value is None else str(value).lower()
    if key in UNSUPPORTED_PRECISIONS:
        raise UserError(f"precision {value!r} is not supported: {UNSUPPORTED_PRECISIONS[key]}")
    if key not in PRECISION_ALIASES:
        raise UserError(
            f"unknown precision {value!r}; use one of: {', '.join(CANONICAL_PRECISIONS)} "
            "(Lightning's 32, 16, 'bf16' and 8 work too)"
        )
    return PRECISION_ALIASES[key]


def normalize_accelerator(value: str | None) -> str:
    """ "auto", "cpu" or "gpu" for any accepted spelling ("cuda" is "gpu"; None is "auto")."""
    key = (value or "auto").lower()
    if key not in _ACCELERATOR_ALIASES:
        raise UserError(f"unknown accelerator {value!r}; use auto, cpu, gpu or cuda")
    return _ACCELERATOR_ALIASES[key]

"""Layer-wise adaptive optimizers (LARS, LAMB) around one shared trust-ratio piece, plus lr schedules."""

from largebatch.optim.lamb import LAMB
from largebatch.optim.lars import LARS
from largebatch.optim.param_groups import NOTHING, Exclude, param_groups
from largebatch.optim.schedules import Schedule, build_scheduler, scaled_lr, warmup_steps_from_epochs
from largebatch.optim.trust_ratio import LayerStats, trust_ratio

__all__ = [
    "LAMB", "LARS", "Exclude", "NOTHING", "param_groups", "LayerStats", "trust_ratio",
    "Schedule", "build_scheduler", "scaled_lr", "warmup_steps_from_epochs",
]

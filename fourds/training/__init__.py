"""Training: the trainer every method shares, and the recipes that compose runs from a RunConfig."""

from fourds.training.callbacks import Callback
from fourds.training.checkpoints import CheckpointMismatchError
from fourds.training.reproducibility import seed_everything
from fourds.training.trainer import NonFiniteLossError, Trainer, TrainResult

__all__ = [
    "Callback",
    "CheckpointMismatchError",
    "NonFiniteLossError",
    "TrainResult",
    "Trainer",
    "seed_everything",
]

"""Training: the trainer every method shares, and the recipes that compose runs from a RunConfig."""

from fourds.training.callbacks import Callback
from fourds.training.checkpoints import CheckpointMismatchError
from fourds.training.recipes import DistillResult, TrainedModel, distill, train_teacher
from fourds.training.reproducibility import seed_everything
from fourds.training.trainer import NonFiniteLossError, Trainer, TrainResult

__all__ = [
    "Callback",
    "CheckpointMismatchError",
    "DistillResult",
    "NonFiniteLossError",
    "TrainResult",
    "TrainedModel",
    "Trainer",
    "distill",
    "seed_everything",
    "train_teacher",
]

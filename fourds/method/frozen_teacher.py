"""How a frozen teacher behaves while the method around it trains: one rule for 4Ds and KD alike."""

from __future__ import annotations

from typing import Literal

from torch import nn

BatchNormMode = Literal["adapt", "frozen"]
BATCH_NORM_MODES = ("adapt", "frozen")


def check_bn_mode(bn_mode: str) -> None:
    if bn_mode not in BATCH_NORM_MODES:
        raise ValueError(f"teacher BatchNorm mode (bn_mode, config fourds.teacher_bn) must be 'adapt' or 'frozen', got {bn_mode!r}")


def set_frozen_teacher_mode(teacher: nn.Module, training: bool, bn_mode: BatchNormMode) -> None:
    """Eval mode for the whole teacher, except BatchNorm layers under ``"adapt"`` while training.

    ``"adapt"`` lets the teacher's BatchNorm normalise with, and collect, statistics of the
    target batches (the reference's implicit AdaBN); ``"frozen"`` keeps the source
    statistics. Dropout and every other layer always stay in eval mode: the teacher's
    weights are frozen, so nothing else should behave as in training.
    """
    teacher.eval()
    if training and bn_mode == "adapt":
        for module in teacher.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.train()

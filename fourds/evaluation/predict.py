"""The project's one prediction loop: logits and labels of a classifier over a dataset.

Validation during training, test evaluation and ONNX parity checks all call
:func:`predict_logits`, so "accuracy" means the same thing everywhere.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm


def predict_logits(
    model: nn.Module,
    dataset: Dataset,
    *,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    num_workers: int = 0,
    progress: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``model`` over a dataset of ``(image, label)`` pairs in eval mode, without gradients.

    Returns ``(logits, labels)``: float32 logits ``(N, num_classes)`` and int64 labels
    ``(N,)``, both on the CPU, in dataset order. ``device=None`` runs where the model's
    parameters already are; an explicit device moves the model there for the call. The
    model's train/eval mode and device are restored afterwards, so a trainer can
    validate mid-epoch without disturbing its own state.
    """
    if batch_size < 1:
        raise ValueError(f"predict_logits: batch_size must be >= 1, got {batch_size}")
    if len(dataset) == 0:
        raise ValueError("predict_logits: the dataset is empty; there is nothing to predict")

    home_device = _device_of(model)
    run_device = torch.device(device) if device is not None else home_device
    modes = {module: module.training for module in model.modules()}
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)

    all_logits: list[torch.Tensor] = []
    all_labels: list[torch.Tensor] = []
    try:
        model.to(run_device)
        model.eval()
        with torch.inference_mode():
            for images, labels in tqdm(loader, desc="predict", disable=not progress, leave=False):
                logits = model(images.to(run_device, non_blocking=True))
                if not isinstance(logits, torch.Tensor) or logits.ndim != 2:
                    raise TypeError(
                        f"predict_logits: {type(model).__name__} must return a (batch, classes) logits "
                        f"tensor, got {type(logits).__name__}"
                        + (f" of shape {tuple(logits.shape)}" if isinstance(logits, torch.Tensor) else "")
                    )
                all_logits.append(logits.float().cpu())
                all_labels.append(torch.as_tensor(labels).long().cpu())
    finally:
        model.to(home_device)
        for module, training in modes.items():
            module.training = training
    return torch.cat(all_logits), torch.cat(all_labels)


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy in [0, 1]."""
    if logits.ndim != 2 or labels.ndim != 1 or logits.shape[0] != labels.shape[0]:
        raise ValueError(
            f"accuracy: expected logits (N, C) and labels (N,), got {tuple(logits.shape)} and {tuple(labels.shape)}"
        )
    if labels.numel() == 0:
        raise ValueError("accuracy: no predictions to score (empty logits)")
    return (logits.argmax(dim=1) == labels.to(logits.device)).float().mean().item()


def _device_of(model: nn.Module) -> torch.device:
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")

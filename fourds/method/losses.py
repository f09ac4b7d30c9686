"""Loss terms shared by 4Ds and its baselines."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def softened_kl(p_logits: torch.Tensor, q_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(softmax(p/T) || softmax(q/T)), averaged over the batch; gradients reach both sides unless detached."""
    if p_logits.shape != q_logits.shape:
        raise ValueError(f"KL needs logits of one shape, got {tuple(p_logits.shape)} and {tuple(q_logits.shape)}")
    log_p = F.log_softmax(p_logits / temperature, dim=1)
    log_q = F.log_softmax(q_logits / temperature, dim=1)
    return F.kl_div(log_q, log_p, reduction="batchmean", log_target=True)


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Hinton's distillation term: T^2 * KL(softmax(teacher/T) || softmax(student/T)).

    The T^2 factor keeps the gradient scale of this term independent of T.
    """
    return temperature**2 * softened_kl(teacher_logits, student_logits, temperature)


def information_maximisation(logits: torch.Tensor) -> torch.Tensor:
    """Mean per-image entropy minus the entropy of the mean prediction (SHOT's label-free objective).

    Minimising it makes each prediction confident while keeping the predictions spread over
    the classes (the second term stops the trivial answer "one class for everything").
    Needs no labels, so unlabelled target images feed it. Ranges over [-log K, log K].
    """
    probabilities = F.softmax(logits, dim=1)
    log_probabilities = F.log_softmax(logits, dim=1)
    mean_entropy = -(probabilities * log_probabilities).sum(dim=1).mean()
    marginal = probabilities.mean(dim=0)
    marginal_entropy = -(marginal * torch.log(marginal.clamp_min(1e-12))).sum()
    return mean_entropy - marginal_entropy

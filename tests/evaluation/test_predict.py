from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from fourds.evaluation.predict import accuracy, predict_logits


def _model_with_dropout_and_bn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.BatchNorm1d(8), nn.Dropout(0.5), nn.Linear(8, 3))


def _dataset(n: int = 10) -> TensorDataset:
    generator = torch.Generator().manual_seed(1)
    return TensorDataset(torch.randn(n, 3, 2, 2, generator=generator), torch.arange(n) % 3)


def test_logits_match_an_eval_mode_forward_in_order_and_across_batches():
    model = _model_with_dropout_and_bn()
    dataset = _dataset(10)
    model.eval()
    expected = model(dataset.tensors[0]).detach()
    model.train()

    logits, labels = predict_logits(model, dataset, batch_size=3)

    assert logits.dtype == torch.float32 and labels.dtype == torch.int64
    assert logits.device.type == "cpu" and labels.device.type == "cpu"
    assert logits.shape == (10, 3)
    torch.testing.assert_close(logits, expected)
    assert torch.equal(labels, dataset.tensors[1])


def test_previous_mode_is_restored_and_bn_statistics_are_untouched():
    model = _model_with_dropout_and_bn()
    running_mean = model[2].running_mean.clone()

    model.train()
    predict_logits(model, _dataset(), batch_size=4)
    assert model.training and all(module.training for module in model.modules())
    assert torch.equal(model[2].running_mean, running_mean)

    model.eval()
    predict_logits(model, _dataset(), batch_size=4)
    assert not model.training


def test_mode_is_restored_when_the_model_fails():
    class Broken(nn.Module):
        def forward(self, images):
            raise RuntimeError("boom")

    model = Broken().train()
    with pytest.raises(RuntimeError, match="boom"):
        predict_logits(model, _dataset())
    assert model.training


def test_integer_labels_from_a_plain_list_dataset_are_collated():
    dataset = [(torch.randn(3, 2, 2), label) for label in (0, 2, 1)]
    logits, labels = predict_logits(_model_with_dropout_and_bn(), dataset, batch_size=2)
    assert logits.shape == (3, 3)
    assert labels.tolist() == [0, 2, 1]


def test_non_logit_outputs_and_empty_datasets_are_clear_errors():
    with pytest.raises(TypeError, match="logits"):
        predict_logits(nn.Identity(), _dataset())
    with pytest.raises(ValueError, match="empty"):
        predict_logits(_model_with_dropout_and_bn(), [])


def test_accuracy_counts_argmax_hits():
    logits = torch.tensor([[2.0, 1.0], [0.0, 3.0], [5.0, -1.0], [0.0, 1.0]])
    assert accuracy(logits, torch.tensor([0, 1, 1, 0])) == pytest.approx(0.5)
    assert accuracy(logits, torch.tensor([0, 1, 0, 1])) == pytest.approx(1.0)


def test_accuracy_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="expected logits"):
        accuracy(torch.zeros(3, 2), torch.zeros(4, dtype=torch.long))


def test_mixed_submodule_modes_are_restored_exactly():
    model = _model_with_dropout_and_bn().train()
    model[2].eval()  # e.g. a frozen BatchNorm inside a training model

    predict_logits(model, _dataset(), batch_size=4)

    assert model.training and model[3].training
    assert not model[2].training

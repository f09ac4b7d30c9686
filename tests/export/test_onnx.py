import hashlib

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
import torchvision
from torch import nn

from fourds.export.onnx import (
    OnnxExportError,
    check_parity,
    export_onnx,
    measure_onnx_latency,
    measure_torch_latency,
)
from fourds.hashing import file_sha256

IMAGE_SIZE = 16


def tiny_cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 3),
    )


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """One export shared by the module (the first export in a process takes ~20 s)."""
    model = tiny_cnn()
    model.train()  # export must neither need eval mode from the caller nor leave it in eval
    model[1].running_mean.fill_(0.3)
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    result = export_onnx(model, tmp_path_factory.mktemp("onnx") / "student.onnx", image_size=IMAGE_SIZE, arch="tiny_cnn")
    return model, before, result


def _ort_logits(path, images: torch.Tensor) -> np.ndarray:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"images": images.numpy()})[0]


def test_export_records_file_facts(exported):
    _, _, result = exported
    data = result.path.read_bytes()

    assert result.sha256 == hashlib.sha256(data).hexdigest() == file_sha256(result.path)
    assert result.size_bytes == len(data) and result.size_mb == pytest.approx(len(data) / 2**20)
    assert result.opset == 18
    assert (result.input_name, result.output_name) == ("images", "logits")
    assert (result.image_size, result.num_classes) == (IMAGE_SIZE, 3)
    proto = onnx.load(str(result.path))
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # symbolic batch


def test_model_mode_and_weights_are_untouched_by_export_and_parity(exported):
    model, before, result = exported
    check_parity(model, result.path, batch_size=3, image_size=IMAGE_SIZE)

    assert all(module.training for module in model.modules())
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, before[name]), name


@pytest.mark.parametrize("batch_size", [1, 5])
def test_dynamic_batch_runs_and_matches_pytorch(exported, batch_size):
    model, _, result = exported
    images = torch.randn(batch_size, 3, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(7))
    reference = tiny_cnn()
    reference.load_state_dict(model.state_dict())
    with torch.no_grad():
        expected = reference.eval()(images).numpy()

    logits = _ort_logits(result.path, images)

    assert logits.shape == (batch_size, 3)
    assert np.abs(logits - expected).max() < 1e-4


def test_parity_is_tiny_for_the_exported_model_and_large_for_another(exported):
    model, _, result = exported
    assert check_parity(model, result.path, batch_size=3, image_size=IMAGE_SIZE) < 1e-4
    assert check_parity(tiny_cnn(seed=1), result.path, batch_size=3, image_size=IMAGE_SIZE) > 1e-3


def test_parity_refuses_the_export_example_batch(exported):
    model, _, result = exported
    with pytest.raises(ValueError, match="export example"):
        check_parity(model, result.path, batch_size=2, image_size=IMAGE_SIZE)


def test_latency_reports_median_and_p90(exported):
    model, _, result = exported
    onnx_latency = measure_onnx_latency(result.path, batch_size=1, image_size=IMAGE_SIZE, repeats=5, warmup=1, threads=1)
    torch_latency = measure_torch_latency(model, batch_size=4, image_size=IMAGE_SIZE, repeats=5, warmup=1)

    for latency, batch in ((onnx_latency, 1), (torch_latency, 4)):
        assert set(latency) == {"batch_size", "median_ms", "p90_ms", "mean_ms", "repeats"}
        assert latency["batch_size"] == batch and latency["repeats"] == 5
        assert 0 < latency["median_ms"] <= latency["p90_ms"]
    assert model.training  # the timed copy, not the caller's model, was put in eval mode


def test_bad_arguments_and_missing_files_are_named(tmp_path):
    with pytest.raises(ValueError, match="opset must be >= 17"):
        export_onnx(tiny_cnn(), tmp_path / "m.onnx", image_size=IMAGE_SIZE, opset=13)
    with pytest.raises(FileNotFoundError, match="nowhere.onnx"):
        measure_onnx_latency(tmp_path / "nowhere.onnx", batch_size=1, image_size=IMAGE_SIZE)


class _DataDependentBranch(nn.Module):
    def __init__(self):
        super().__init__()
        self.head = nn.Linear(3, 2)

    def forward(self, images):
        pooled = images.mean(dim=(2, 3))
        return self.head(pooled) if pooled.sum() > 0 else -self.head(pooled)


def test_export_failure_names_the_architecture_and_opset(tmp_path):
    target = tmp_path / "bad.onnx"
    with pytest.raises(OnnxExportError, match=r"could not export branchy_net to ONNX \(opset 18"):
        export_onnx(_DataDependentBranch(), target, image_size=8, arch="branchy_net")
    assert not target.exists()


@pytest.mark.slow
def test_a_torchvision_resnet_exports_with_a_dynamic_batch(tmp_path):
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=3)
    result = export_onnx(model, tmp_path / "resnet18.onnx", image_size=32, arch="resnet18")

    assert check_parity(model, result.path, batch_size=5, image_size=32) < 1e-4
    assert _ort_logits(result.path, torch.randn(1, 3, 32, 32)).shape == (1, 3)


def test_export_and_check_measures_parity_and_latency_and_judges_only_on_request(tmp_path):
    from fourds.config import ExportConfig
    from fourds.export.onnx import export_and_check

    model = tiny_cnn(seed=3)
    config = ExportConfig(latency_batch_sizes=[4], latency_repeats=2)
    checked = export_and_check(model, tmp_path / "m.onnx", image_size=IMAGE_SIZE, config=config, arch="tiny_cnn")

    assert checked.parity_max_abs_diff == check_parity(model, checked.export.path, batch_size=3,
                                                       image_size=IMAGE_SIZE)
    assert sorted(checked.latency) == [1, 4]  # batch 1 always: the latency gate reads it
    assert checked.latency_ms == {"1": checked.latency[1]["median_ms"], "4": checked.latency[4]["median_ms"]}
    checked.raise_for_parity(max_abs_diff=checked.parity_max_abs_diff)  # at the budget: accepted
    with pytest.raises(OnnxExportError, match=r"m\.onnx: ONNX logits differ from PyTorch by up to .* more than "
                                              r"promotion\.max_parity_abs_diff=1e-12"):
        checked.raise_for_parity(max_abs_diff=1e-12)

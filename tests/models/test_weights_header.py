"""A weights file judged by its header alone (issue 14, item 7): what ``fourds distill --teacher FILE`` checks
before the pipeline starts, with the messages a command-line user can act on."""

import pytest
import torch
from safetensors.torch import save_file

from fourds.models import WeightsError, build_classifier, save_classifier
from fourds.models.weights import read_classifier_info

CLASSES = ["cat", "dog", "fox"]


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)
    return build_classifier("resnet18", len(CLASSES), stem="small_input").eval()


@pytest.fixture(scope="module")
def saved(resnet, tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "teacher.safetensors"
    return save_classifier(resnet, path, arch="resnet18", classes=CLASSES, stem="small_input")


def test_a_good_file_is_described_by_its_header(saved):
    info = read_classifier_info(saved)
    assert (info.arch, info.classes, info.stem) == ("resnet18", CLASSES, "small_input")


def test_a_header_less_safetensors_file_says_how_to_import_it_from_the_cli_and_from_python(resnet, tmp_path):
    path = tmp_path / "bare.safetensors"
    save_file({key: value.contiguous() for key, value in resnet.state_dict().items()}, str(path))

    with pytest.raises(WeightsError) as refused:
        read_classifier_info(path)
    message = str(refused.value)
    assert f"'fourds teacher import {path} --arch ARCH --classes NAMES'" in message
    assert "(from Python: pass arch=" in message

    with pytest.raises(WeightsError, match=rf"'fourds teacher import {path} --arch resnet18 --classes NAMES'"):
        read_classifier_info(path, arch="resnet18")


def test_a_torch_file_without_arch_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "teacher.pt"
    path.write_bytes(b"never unpickled: the missing architecture is reported first")
    with pytest.raises(WeightsError, match="fourds teacher import"):
        read_classifier_info(path)


def test_a_torch_state_dict_with_arch_and_classes_is_checked_by_shape(resnet, tmp_path):
    path = tmp_path / "teacher.pt"
    torch.save(resnet.state_dict(), path)
    assert read_classifier_info(path, arch="resnet18", classes=CLASSES, stem="small_input").arch == "resnet18"
    with pytest.raises(WeightsError, match="head for 3 classes, expected 4"):
        read_classifier_info(path, arch="resnet18", classes=[*CLASSES, "owl"], stem="small_input")


def test_shapes_of_another_architecture_are_found_in_the_header(resnet, tmp_path):
    path = tmp_path / "claims-resnet34.safetensors"
    state = {key: value.contiguous() for key, value in resnet.state_dict().items()}
    save_file(state, str(path), metadata={"arch": "resnet34", "classes": '["cat", "dog", "fox"]',
                                          "stem": "small_input"})
    with pytest.raises(WeightsError, match="different architecture than resnet34.*missing keys e.g. layer1.2"):
        read_classifier_info(path)


def test_truncated_unknown_and_adapted_files_are_named(saved, tmp_path):
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(saved.read_bytes()[: saved.stat().st_size // 2])
    with pytest.raises(WeightsError, match="truncated.safetensors is not a readable safetensors file"):
        read_classifier_info(truncated)

    onnx = tmp_path / "teacher.onnx"
    onnx.write_bytes(b"onnx")
    with pytest.raises(WeightsError, match="unsupported weights format '.onnx'"):
        read_classifier_info(onnx)

    adapted = tmp_path / "adapted.safetensors"
    save_classifier(build_classifier("resnet18", 3, stem="small_input"), adapted, arch="resnet18", classes=CLASSES,
                    stem="small_input", extra_state={"adapter.weight": torch.zeros(2)})
    with pytest.raises(WeightsError, match="holds more than a classifier: 1 extra tensors"):
        read_classifier_info(adapted)

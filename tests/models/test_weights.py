import pytest
import torch

from fourds.models import WeightsError, build_classifier, load_classifier, save_classifier

CLASSES = ["cat", "dog", "fox"]


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)
    return build_classifier("resnet18", len(CLASSES), stem="small_input").eval()


@pytest.fixture(scope="module")
def saved(resnet, tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "teacher.safetensors"
    save_classifier(resnet, path, arch="resnet18", classes=CLASSES, stem="small_input", metadata={"run": "abc"})
    return path


def test_round_trip_gives_identical_logits_and_metadata(resnet, saved):
    loaded, info = load_classifier(saved)
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(images), resnet(images))
    assert (info.arch, info.classes, info.stem, info.metadata) == ("resnet18", CLASSES, "small_input", {"run": "abc"})
    assert not loaded.training


def test_torch_state_dict_loads_when_arch_and_classes_are_given(resnet, tmp_path):
    path = tmp_path / "teacher.pt"
    torch.save(resnet.state_dict(), path)
    loaded, info = load_classifier(path, arch="resnet18", classes=CLASSES, stem="small_input")
    assert torch.equal(loaded.conv1.weight, resnet.conv1.weight)
    with pytest.raises(WeightsError, match="pass arch="):
        load_classifier(path, classes=CLASSES)


def test_other_class_count_names_expected_and_found(saved):
    with pytest.raises(WeightsError, match=r"teacher.safetensors holds a classifier for 3 classes, expected 2"):
        load_classifier(saved, classes=["cat", "dog"])


def test_other_class_names_show_the_differences(saved):
    with pytest.raises(WeightsError, match=r"only in the file \['fox'\], only expected \['owl'\]"):
        load_classifier(saved, classes=["cat", "dog", "owl"])
    with pytest.raises(WeightsError, match="another order"):
        load_classifier(saved, classes=["dog", "cat", "fox"])


def test_state_dict_head_of_another_size_is_a_class_count_error(resnet, tmp_path):
    path = tmp_path / "teacher.pt"
    torch.save(resnet.state_dict(), path)
    with pytest.raises(WeightsError, match="head for 3 classes, expected 4"):
        load_classifier(path, arch="resnet18", classes=[*CLASSES, "owl"], stem="small_input")


def test_weights_of_another_architecture_are_summarised(resnet, saved, tmp_path):
    path = tmp_path / "teacher.pt"
    torch.save(resnet.state_dict(), path)
    with pytest.raises(WeightsError, match=r"different architecture than resnet34 .*missing keys e\.g\. layer1\.2"):
        load_classifier(path, arch="resnet34", classes=CLASSES, stem="small_input")
    with pytest.raises(WeightsError, match=r"shape mismatches .*conv1\.weight \(64, 3, 3, 3\) vs \(64, 3, 7, 7\)"):
        load_classifier(path, arch="resnet18", classes=CLASSES)  # the default stem has a 7x7 conv1
    with pytest.raises(WeightsError, match="holds weights for resnet18 .*expected resnet34"):
        load_classifier(saved, arch="resnet34")


def test_pickled_full_model_is_refused_without_running_it(resnet, tmp_path):
    path = tmp_path / "model.pt"
    torch.save(resnet, path)
    with pytest.raises(WeightsError, match="model.pt is a pickled model, not a weights file.*state_dict"):
        load_classifier(path, arch="resnet18", classes=CLASSES)


@pytest.mark.parametrize("name", ["broken.safetensors", "broken.pt"])
def test_corrupt_file(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"not weights at all" * 8)
    with pytest.raises(WeightsError, match=f"{name} is not a readable"):
        load_classifier(path, arch="resnet18", classes=CLASSES)


def test_missing_file_and_unknown_format(tmp_path):
    with pytest.raises(WeightsError, match="not found: .*absent.safetensors"):
        load_classifier(tmp_path / "absent.safetensors")
    (tmp_path / "teacher.onnx").write_bytes(b"x")
    with pytest.raises(WeightsError, match="unsupported weights format '.onnx'"):
        load_classifier(tmp_path / "teacher.onnx")


def test_saving_under_the_wrong_description_is_refused(resnet, tmp_path):
    with pytest.raises(WeightsError, match="different architecture than resnet34"):
        save_classifier(resnet, tmp_path / "t.safetensors", arch="resnet34", classes=CLASSES, stem="small_input")
    with pytest.raises(ValueError, match="reserved"):
        save_classifier(resnet, tmp_path / "t.safetensors", arch="resnet18", classes=CLASSES, metadata={"arch": "x"})

"""The standalone classifier a registered student carries: its preprocessing is fourds's evaluation transform,
pixel for pixel, and ``fourds predict`` on an exported ONNX file labels images as the evaluation step does."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from torch import nn

from fourds.config import DataConfig
from fourds.data.datasets import ImageTableDataset, build_transforms
from fourds.evaluation.predict import predict_logits
from fourds.export.onnx import classifier_metadata, export_onnx
from fourds.inference import (
    ImagePreprocessing,
    ModelInputError,
    OnnxImageClassifier,
    collect_images,
    eval_transform,
    preprocessing_for,
)
from fourds.inference import onnx_classifier

CLASSES = ["circle", "square", "star"]


def _images(folder: Path, sizes, *, seed: int = 0, mode: str = "RGB") -> list[Path]:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, (height, width) in enumerate(sizes):
        shape = (height, width, 3) if mode == "RGB" else (height, width)
        path = folder / f"{index:02d}.png"
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


@pytest.mark.parametrize(
    "data",
    [
        DataConfig(image_size=16, resize_size=20, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3)),
        DataConfig(image_size=16, resize_size=None),
        DataConfig(image_size=224, resize_size=256),
    ],
    ids=["resize-and-crop", "resize-only", "imagenet"],
)
@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_preprocessing_is_the_evaluation_transform_pixel_for_pixel(tmp_path, data, mode):
    sizes = [(16, 16), (37, 23), (23, 37), (300, 301), (9, 40)]
    preprocessing = preprocessing_for(data)
    evaluation = build_transforms(data, train=False)

    for path in _images(tmp_path, sizes, mode=mode):
        with Image.open(path) as image:
            rgb = image.convert("RGB")
        expected = evaluation(rgb).numpy()
        assert np.array_equal(preprocessing(rgb), expected), path.name
        assert np.array_equal(eval_transform(preprocessing)(rgb).numpy(), expected), path.name
        assert np.array_equal(preprocessing(np.asarray(rgb)), expected), path.name  # a uint8 array works too


def test_preprocessing_round_trips_and_refuses_what_it_does_not_implement():
    preprocessing = ImagePreprocessing(image_size=8, resize_size=10, mean=(0.1, 0.2, 0.3), std=(1.0, 2.0, 3.0))
    assert ImagePreprocessing.from_json(preprocessing.to_json()) == preprocessing
    for bad in ({"channel_order": "BGR"}, {"resize_size": 4}, {"std": (1.0, 0.0, 1.0)}):
        with pytest.raises(ModelInputError):
            ImagePreprocessing(**{**preprocessing.to_dict(), **bad})
    with pytest.raises(ModelInputError, match="uint8"):
        preprocessing(np.zeros((8, 8, 3), dtype=np.float32))


def test_the_classifier_module_imports_nothing_from_fourds():
    """It is copied into every registered student and must load where fourds is not installed."""
    tree = ast.parse(Path(onnx_classifier.__file__).read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert imported <= {"__future__", "json", "collections", "dataclasses", "pathlib", "numpy", "PIL",
                        "onnxruntime", "pandas"}


def tiny_classifier() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, len(CLASSES)),
    ).eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A small CNN exported with its preprocessing and classes in the ONNX metadata (one export per module)."""
    model = tiny_classifier()
    data = DataConfig(image_size=16, resize_size=18, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    path = tmp_path_factory.mktemp("onnx") / "student.onnx"
    export_onnx(model, path, image_size=16, metadata=classifier_metadata(preprocessing_for(data), CLASSES,
                                                                           arch="tiny"))
    return model, data, path


def test_the_exported_file_records_its_preprocessing_and_classes(exported):
    import onnx

    _, data, path = exported
    props = {prop.key: prop.value for prop in onnx.load(str(path)).metadata_props}

    assert json.loads(props["fourds.classes"]) == CLASSES
    assert ImagePreprocessing.from_json(props["fourds.preprocessing"]) == preprocessing_for(data)
    assert props["fourds.arch"] == "tiny"
    classifier = OnnxImageClassifier(path)
    assert classifier.classes == CLASSES and classifier.preprocessing == preprocessing_for(data)


def test_fourds_predict_on_an_onnx_file_gives_the_evaluation_labels(exported, tmp_path, capsys):
    from fourds_app.cli import main

    model, data, path = exported
    files = _images(tmp_path / "images" / "batch", [(20, 20), (31, 17), (16, 40), (64, 64), (18, 18), (25, 30)])
    table = pd.DataFrame({"path": [f.name for f in files], "label": [CLASSES[i % 3] for i in range(len(files))]})
    # What the evaluation step computes: predict_logits over an ImageTableDataset with the evaluation transform.
    logits, _ = predict_logits(model, ImageTableDataset(files[0].parent, table, CLASSES,
                                                        build_transforms(data, train=False)))
    expected = torch.softmax(logits, dim=1).numpy()

    with pytest.raises(SystemExit) as finished:
        main(["predict", str(path), str(tmp_path / "images"), "--json", "--workspace", str(tmp_path / "ws")])
    out = capsys.readouterr().out

    assert finished.value.code == 0
    predicted = json.loads(out)
    assert [p["image"] for p in predicted] == [str(f) for f in files]
    assert [p["label"] for p in predicted] == [CLASSES[i] for i in expected.argmax(axis=1)]
    assert np.allclose([[p["probabilities"][c] for c in CLASSES] for p in predicted], expected, atol=1e-5)

    with pytest.raises(SystemExit) as finished:
        main(["predict", str(path), str(files[1]), "--workspace", str(tmp_path / "ws")])
    table_out = capsys.readouterr().out.splitlines()
    assert finished.value.code == 0
    assert table_out[0] == f"model: {path} (3 classes, input 16x16)"
    assert table_out[1].split() == ["image", "class", "probability"]
    assert table_out[2].split() == [str(files[1]), CLASSES[expected[1].argmax()], f"{expected[1].max():.4f}"]


def test_predict_names_what_is_wrong_with_its_arguments(exported, tmp_path, capsys):
    from fourds_app.cli import main

    _, _, path = exported
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("not an image")
    (tmp_path / "empty").mkdir()
    for args, message in (
        ([str(path), str(tmp_path / "missing.png")], "missing.png: no such image file or folder"),
        ([str(path), str(tmp_path / "empty")], "no image files found"),
        ([str(path), str(not_an_image)], "notes.png: not a readable image"),
        ([str(tmp_path / "nothing.onnx"), str(not_an_image)], "ONNX file not found"),
    ):
        with pytest.raises(SystemExit) as finished:
            main(["predict", *args, "--workspace", str(tmp_path / "ws")])
        err = capsys.readouterr().err
        assert finished.value.code == 2, err
        assert message in err and "Traceback" not in err


def _with_preprocessing_metadata(path: Path, copy: Path, recorded: str | None) -> Path:
    """A copy of an exported ONNX file whose ``fourds.preprocessing`` is ``recorded`` (None: absent, an old export)."""
    import onnx

    proto = onnx.load(str(path))
    props = {prop.key: prop.value for prop in proto.metadata_props if prop.key != "fourds.preprocessing"}
    if recorded is not None:
        props["fourds.preprocessing"] = recorded
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, props)
    onnx.save_model(proto, str(copy))
    return copy


def test_predict_warns_which_preprocessing_it_assumes_for_an_old_export(exported, tmp_path, capsys):
    import yaml

    from fourds_app.cli import main

    model, data, path = exported
    old_export = _with_preprocessing_metadata(path, tmp_path / "old.onnx", None)
    config_file = tmp_path / "run.yaml"
    config_file.write_text(yaml.safe_dump({"data": {"image_size": 16, "resize_size": 18,
                                                    "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}}))
    files = _images(tmp_path / "images", [(20, 20), (31, 17), (16, 40)])
    table = pd.DataFrame({"path": [f.name for f in files], "label": CLASSES})
    logits, _ = predict_logits(model, ImageTableDataset(files[0].parent, table, CLASSES,
                                                        build_transforms(data, train=False)))

    with pytest.raises(SystemExit) as finished:
        main(["predict", str(old_export), *map(str, files), "--json", "--workspace", str(tmp_path / "ws"),
              "--config", str(config_file)])
    captured = capsys.readouterr()

    assert finished.value.code == 0, captured.err
    assert captured.err.strip() == (
        f"warning: {old_export} does not record its preprocessing (exported before fourds recorded it); assuming: "
        "resize the shorter side to 18, centre crop 16x16, normalise with mean [0.5, 0.5, 0.5] and std "
        f"[0.25, 0.25, 0.25] (the data section of {config_file})"
    )
    assert [p["label"] for p in json.loads(captured.out)] == [CLASSES[i] for i in logits.argmax(dim=1).tolist()]


def test_predict_refuses_a_model_with_malformed_preprocessing_naming_it(exported, tmp_path, capsys):
    from fourds_app.cli import main

    _, _, path = exported
    broken = _with_preprocessing_metadata(path, tmp_path / "broken.onnx", '{"image_size": 16}')
    image = _images(tmp_path / "images", [(20, 20)])[0]

    with pytest.raises(SystemExit) as finished:
        main(["predict", str(broken), str(image), "--workspace", str(tmp_path / "ws")])
    err = capsys.readouterr().err

    assert finished.value.code == 2, err
    assert err.startswith(f"error: {broken} records a malformed preprocessing (metadata 'fourds.preprocessing')")
    assert "warning" not in err


def test_collect_images_walks_folders_in_order_and_skips_hidden_files(tmp_path):
    files = _images(tmp_path / "b", [(8, 8), (8, 8)]) + _images(tmp_path / "a" / "deep", [(8, 8)])
    (tmp_path / "b" / ".hidden.png").write_bytes(files[0].read_bytes())
    (tmp_path / "b" / "readme.txt").write_text("no")

    assert collect_images([tmp_path / "b", tmp_path / "a"]) == files[:2] + files[2:]
    assert collect_images([files[1]]) == [files[1]]

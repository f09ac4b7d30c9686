from __future__ import annotations

import pytest
import torch

from fourds.config import DataConfig
from fourds.data.datasets import (
    UNLABELLED_TARGET,
    ImageTableDataset,
    UnlabelledImageDataset,
    build_transforms,
    unlabelled_dataset,
)
from fourds.data.table import image_folder_table, read_image_table, split_for

from .images import add_unlabelled, make_image_folder, write_png

DIGITS = DataConfig(image_size=16, resize_size=None, horizontal_flip=False, mean=(0.5,) * 3, std=(0.5,) * 3)


def test_items_are_rgb_tensors_indexed_by_the_teachers_class_order(tmp_path):
    folder = make_image_folder(tmp_path / "d", {"a": 2, "b": 1})
    table, _ = image_folder_table(folder, progress=False)
    teacher_classes = ["z", "b", "a"]  # not the domain's folder order

    dataset = ImageTableDataset(folder, table, teacher_classes, build_transforms(DIGITS, train=False))

    assert len(dataset) == 3
    image, label = dataset[2]  # b/00.png
    assert label == 1 and dataset.targets == [2, 2, 1]
    assert image.shape == (3, 16, 16) and image.dtype == torch.float32
    assert torch.equal(image[0], image[1]) and torch.equal(image[1], image[2])  # grayscale replicated
    assert -1.0 <= image.min() and image.max() <= 1.0


def test_unknown_label_is_a_clear_error(tmp_path):
    folder = make_image_folder(tmp_path / "d", {"a": 1, "owl": 2})
    table, _ = image_folder_table(folder, progress=False)
    with pytest.raises(
        ValueError, match=r"label\(s\) 'owl' not in the teacher's class list \['a'\] \(e\.g\. owl/00\.png"
    ):
        ImageTableDataset(folder, table, ["a"])


def test_without_transform_items_are_rgb_images(tmp_path):
    folder = make_image_folder(tmp_path / "d", {"a": 1})
    table, _ = image_folder_table(folder, progress=False)
    image, label = ImageTableDataset(folder, table, ["a"])[0]
    assert (image.mode, image.size, label) == ("RGB", (12, 12), 0)


def test_eval_transform_resizes_and_centre_crops(tmp_path):
    config = DataConfig(image_size=24, resize_size=32)
    from PIL import Image

    image = Image.open(write_png(tmp_path / "x.png", 1, size=50, mode="RGB"))
    assert build_transforms(config, train=False)(image).shape == (3, 24, 24)
    wide = image.resize((80, 40))
    assert build_transforms(config, train=False)(wide).shape == (3, 24, 24)


def test_training_crop_pads_when_there_is_no_resize_margin(tmp_path):
    from PIL import Image

    image = Image.open(write_png(tmp_path / "x.png", 1, size=16, mode="RGB"))
    train = build_transforms(DIGITS, train=True)
    crop = next(step for step in train.transforms if type(step).__name__ == "RandomCrop")
    assert crop.padding == 2  # image_size // 8

    torch.manual_seed(0)
    shifted = [train(image) for _ in range(8)]
    centred = build_transforms(DIGITS, train=False)(image)
    assert any(not torch.equal(sample, centred) for sample in shifted)


def test_flip_and_crop_follow_the_config():
    def names(config, train):
        return [type(step).__name__ for step in build_transforms(config, train).transforms]

    photos = DataConfig()
    assert names(photos, True) == ["Resize", "RandomCrop", "RandomHorizontalFlip", "ToTensor", "Normalize"]
    assert names(photos, False) == ["Resize", "CenterCrop", "ToTensor", "Normalize"]
    assert names(DataConfig(random_crop=False, horizontal_flip=False), True) == [
        "Resize",
        "CenterCrop",
        "ToTensor",
        "Normalize",
    ]


def test_resize_smaller_than_the_crop_is_refused():
    with pytest.raises(ValueError, match=r"data\.resize_size \(16\) must be >= data\.image_size \(32\)"):
        build_transforms(DataConfig(image_size=32, resize_size=16), train=True)


def test_unlabelled_dataset_yields_training_transformed_images_with_label_minus_one(tmp_path):
    folder = add_unlabelled(make_image_folder(tmp_path / "d", {"a": 2}), 3, size=16)
    table, _ = image_folder_table(folder, progress=False)

    dataset = unlabelled_dataset(folder, table, DIGITS)

    assert isinstance(dataset, UnlabelledImageDataset) and len(dataset) == 3
    assert dataset.paths == ["unlabelled/u00.png", "unlabelled/u01.png", "unlabelled/u02.png"]
    image, label = dataset[1]
    assert label == UNLABELLED_TARGET == -1 and image.shape == (3, 16, 16)
    trained_with = [type(step).__name__ for step in build_transforms(DIGITS, train=True).transforms]
    assert [type(step).__name__ for step in dataset.transform.transforms] == trained_with


def test_no_unlabelled_dataset_without_unlabelled_images_or_with_ratio_zero(tmp_path):
    folder = make_image_folder(tmp_path / "d", {"a": 2})
    table, _ = image_folder_table(folder, progress=False)
    assert unlabelled_dataset(folder, table, DIGITS) is None

    add_unlabelled(folder, 2)
    table, _ = image_folder_table(folder, progress=False)
    ignored = DIGITS.model_copy(update={"unlabelled_batch_ratio": 0.0})
    assert unlabelled_dataset(folder, table, ignored) is None


def test_labelled_and_unlabelled_rows_never_mix(tmp_path):
    folder = add_unlabelled(make_image_folder(tmp_path / "d", {"a": 2}), 2)
    table, _ = image_folder_table(folder, progress=False)
    with pytest.raises(ValueError, match=r"2 row\(s\) of split '\w+' given as unlabelled images \(e\.g\. a/00\.png"):
        UnlabelledImageDataset(folder, table)
    with pytest.raises(ValueError, match=r"label\(s\) '' not in the teacher's class list \['a'\] \(e\.g\. unlabelled/"):
        ImageTableDataset(folder, table, ["a"])


def test_domain_splits_keep_unlabelled_images_out_of_train_val_and_test(image_folder, workspace):
    from fourds.config import RunConfig
    from fourds.data.datasets import domain_splits
    from fourds.data.ingest import ingest_domain

    add_unlabelled(image_folder, 30)  # enough that some hash into every train/val/test bucket
    result = ingest_domain(image_folder, "pets", workspace, progress=False)
    table = read_image_table(result.table_path)
    config = RunConfig(data=DIGITS)
    buckets = {split_for(digest, config.data.val_fraction, config.data.test_fraction)
               for digest in read_image_table(result.table_path).query("split == 'unlabelled'")["sha256"]}
    assert buckets == {"train", "val", "test"}, "premise: unlabelled images whose hash names every split"

    splits = domain_splits(result.images_dir, table, config.data, result.classes)

    assert len(splits.unlabelled) == 30
    assert {label for _, label in (splits.unlabelled[index] for index in range(3))} == {-1}
    for labelled in (splits.train, splits.val, splits.test):
        assert not any(path.startswith("unlabelled/") for path in labelled.paths)
        assert -1 not in labelled.targets
    assert len(splits.train) + len(splits.val) + len(splits.test) == 24

    ignored = RunConfig(data=DIGITS.model_copy(update={"unlabelled_batch_ratio": 0.0}))
    without = domain_splits(result.images_dir, table, ignored.data, result.classes)
    assert without.unlabelled is None

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from PIL import Image

from fourds.data.demo import DEMO_CLASSES, generate_demo_domains


SMALL = {"images_per_class": 3, "source_images_per_class": 3, "unlabelled_per_class": 2}


def _file_hashes(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*.png")}


def test_two_domains_of_ten_digit_classes_and_unlabelled_target_images(tmp_path):
    folders = generate_demo_domains(
        tmp_path / "demo", images_per_class=3, source_images_per_class=2, unlabelled_per_class=4, image_size=20
    )

    assert set(folders) == {"source", "target"}
    assert sorted(p.name for p in folders["source"].iterdir()) == DEMO_CLASSES
    assert sorted(p.name for p in folders["target"].iterdir()) == DEMO_CLASSES + ["unlabelled"]
    assert len(list(folders["source"].rglob("*.png"))) == 20
    assert len(list(folders["target"].glob("[0-9]/*.png"))) == 30
    assert len(list((folders["target"] / "unlabelled").glob("*.png"))) == 40
    source = Image.open(folders["source"] / "7" / "0001.png")
    target = Image.open(folders["target"] / "7" / "0001.png")
    assert (source.mode, source.size) == ("L", (20, 20))
    assert (target.mode, target.size) == ("L", (20, 20))


def test_same_arguments_give_byte_identical_files(tmp_path):
    first = generate_demo_domains(tmp_path / "a", **SMALL, seed=3)
    second = generate_demo_domains(tmp_path / "b", **SMALL, seed=3)
    other_seed = generate_demo_domains(tmp_path / "c", **SMALL, seed=4)
    for domain in ("source", "target"):
        assert _file_hashes(first[domain]) == _file_hashes(second[domain])
        assert _file_hashes(first[domain]) != _file_hashes(other_seed[domain])


def test_an_image_does_not_depend_on_how_many_are_drawn(tmp_path):
    few = generate_demo_domains(tmp_path / "few", images_per_class=1, source_images_per_class=1, unlabelled_per_class=1)
    many = generate_demo_domains(tmp_path / "many", **SMALL)
    assert (few["target"] / "4" / "0000.png").read_bytes() == (many["target"] / "4" / "0000.png").read_bytes()
    unlabelled = "unlabelled/00003.png"
    assert (few["target"] / unlabelled).read_bytes() == (many["target"] / unlabelled).read_bytes()


def test_regenerating_smaller_removes_stale_images(tmp_path):
    generate_demo_domains(tmp_path / "demo", images_per_class=3, source_images_per_class=3, unlabelled_per_class=2)
    folders = generate_demo_domains(tmp_path / "demo", images_per_class=1, source_images_per_class=1, unlabelled_per_class=0)
    assert len(list(folders["source"].rglob("*.png"))) == 10
    assert len(list(folders["target"].rglob("*.png"))) == 10


def test_styles_differ_clearly(tmp_path):
    """Source: black ink on a white background; target: faint ink on a darker grey, noisy background."""
    folders = generate_demo_domains(tmp_path / "demo", **SMALL)

    def stats(folder):
        pixels = np.stack([np.asarray(Image.open(p), dtype=np.float32) for p in folder.rglob("*.png")])
        corners = pixels[:, :2, :2].mean()
        contrast = np.percentile(pixels, 99, axis=(1, 2)) - np.percentile(pixels, 1, axis=(1, 2))
        return corners, contrast.mean()

    source_background, source_contrast = stats(folders["source"])
    target_background, target_contrast = stats(folders["target"])
    assert source_background > 220 and source_contrast > 180
    assert 130 < target_background < 205 and target_contrast < 130


def test_digits_are_drawn_with_contrast(tmp_path):
    folders = generate_demo_domains(tmp_path / "demo", **SMALL)
    for folder in folders.values():
        for path in folder.rglob("*.png"):
            gray = np.asarray(Image.open(path).convert("L"), dtype=np.float32)
            assert gray.max() - gray.min() > 45, path  # the target's ink is faint, never invisible


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"images_per_class": 0}, "images_per_class"),
        ({"source_images_per_class": 0}, "source_images_per_class"),
        ({"unlabelled_per_class": -1}, "unlabelled_per_class"),
        ({"image_size": 4}, "image_size"),
    ],
)
def test_invalid_arguments(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        generate_demo_domains(tmp_path, **kwargs)

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from PIL import Image

from fourds.data.demo import DEMO_CLASSES, generate_demo_domains


def _file_hashes(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*.png")}


def test_two_domains_of_ten_digit_classes(tmp_path):
    folders = generate_demo_domains(tmp_path / "demo", images_per_class=3, image_size=20)

    assert set(folders) == {"source", "target"}
    for folder in folders.values():
        assert sorted(p.name for p in folder.iterdir()) == DEMO_CLASSES
        assert len(list(folder.rglob("*.png"))) == 30
    source = Image.open(folders["source"] / "7" / "0001.png")
    target = Image.open(folders["target"] / "7" / "0001.png")
    assert (source.mode, source.size) == ("L", (20, 20))
    assert (target.mode, target.size) == ("RGB", (20, 20))


def test_same_arguments_give_byte_identical_files(tmp_path):
    first = generate_demo_domains(tmp_path / "a", images_per_class=2, seed=3)
    second = generate_demo_domains(tmp_path / "b", images_per_class=2, seed=3)
    other_seed = generate_demo_domains(tmp_path / "c", images_per_class=2, seed=4)
    for domain in ("source", "target"):
        assert _file_hashes(first[domain]) == _file_hashes(second[domain])
        assert _file_hashes(first[domain]) != _file_hashes(other_seed[domain])


def test_an_image_does_not_depend_on_how_many_are_drawn(tmp_path):
    few = generate_demo_domains(tmp_path / "few", images_per_class=1)
    many = generate_demo_domains(tmp_path / "many", images_per_class=3)
    assert (few["target"] / "4" / "0000.png").read_bytes() == (many["target"] / "4" / "0000.png").read_bytes()


def test_regenerating_smaller_removes_stale_images(tmp_path):
    generate_demo_domains(tmp_path / "demo", images_per_class=3)
    folders = generate_demo_domains(tmp_path / "demo", images_per_class=1)
    assert len(list(folders["source"].rglob("*.png"))) == 10


def test_styles_differ_clearly(tmp_path):
    """Source: dark ink on a light grey background; target: coloured, noisy, often dark backgrounds."""
    folders = generate_demo_domains(tmp_path / "demo", images_per_class=4)

    def stats(folder):
        pixels = np.stack([np.asarray(Image.open(p).convert("RGB"), dtype=np.float32) for p in folder.rglob("*.png")])
        corners = pixels[:, :2, :2].reshape(-1, 3)
        saturation = (pixels.max(axis=-1) - pixels.min(axis=-1)).mean()
        return corners.mean(), saturation

    source_background, source_saturation = stats(folders["source"])
    target_background, target_saturation = stats(folders["target"])
    assert source_background > 220 and source_saturation == 0
    assert target_background < 180 and target_saturation > 40


def test_digits_are_drawn_with_contrast(tmp_path):
    folders = generate_demo_domains(tmp_path / "demo", images_per_class=2)
    for folder in folders.values():
        for path in folder.rglob("*.png"):
            gray = np.asarray(Image.open(path).convert("L"), dtype=np.float32)
            assert gray.max() - gray.min() > 80, path


@pytest.mark.parametrize(
    ("kwargs", "message"), [({"images_per_class": 0}, "images_per_class"), ({"image_size": 4}, "image_size")]
)
def test_invalid_arguments(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        generate_demo_domains(tmp_path, **kwargs)

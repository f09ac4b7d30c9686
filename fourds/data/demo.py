"""A small demo pair of digit domains, rendered from fonts that matplotlib ships.

``source``: dark digits on a light background in DejaVu Sans, mild jitter, grayscale.
``target``: the same ten classes in other typefaces (serif italic, Computer Modern,
STIX, monospace), coloured digits on coloured backgrounds, stronger rotation and scale
jitter and pixel noise. The gap is a style gap, like a new camera or a new scanner:
what 4Ds is for. Nothing is downloaded, and the same arguments give byte-identical
PNG files, so the DVC md5 of an ingested demo domain is reproducible.
"""

from __future__ import annotations

import colorsys
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

DEMO_CLASSES = [str(digit) for digit in range(10)]
_SUPERSAMPLING = 4  # draw large, then downscale: smooth edges at 16-32 px


@dataclass(frozen=True)
class _Style:
    fonts: tuple[str, ...]
    colour: bool
    rotation_degrees: float
    scale_range: tuple[float, float]
    shift_fraction: float
    noise_std: float


_STYLES = {
    "source": _Style(
        fonts=("DejaVuSans.ttf", "DejaVuSans-Bold.ttf"),
        colour=False,
        rotation_degrees=8,
        scale_range=(0.70, 0.85),
        shift_fraction=0.06,
        noise_std=0.0,
    ),
    "target": _Style(
        fonts=("DejaVuSerif-Italic.ttf", "cmr10.ttf", "STIXGeneralBolIta.ttf", "DejaVuSansMono-Bold.ttf"),
        colour=True,
        rotation_degrees=25,
        scale_range=(0.55, 0.85),
        shift_fraction=0.10,
        noise_std=14.0,
    ),
}


def generate_demo_domains(
    out_dir: Path, *, images_per_class: int = 60, image_size: int = 32, seed: int = 0
) -> dict[str, Path]:
    """Write ``out_dir/source/<digit>/<n>.png`` and ``out_dir/target/<digit>/<n>.png``; returns both folders.

    Both folders are replaced if they exist, so a smaller second run leaves no stale images.
    """
    if images_per_class < 1:
        raise ValueError(f"images_per_class must be >= 1, got {images_per_class}")
    if image_size < 8:
        raise ValueError(f"image_size must be >= 8, got {image_size}")
    out_dir = Path(out_dir)
    fonts_dir = _matplotlib_fonts_dir()
    folders = {}
    for domain_index, (domain, style) in enumerate(_STYLES.items()):
        fonts = [fonts_dir / name for name in style.fonts]
        domain_dir = out_dir / domain
        shutil.rmtree(domain_dir, ignore_errors=True)
        for digit in DEMO_CLASSES:
            class_dir = domain_dir / digit
            class_dir.mkdir(parents=True, exist_ok=True)
            for index in range(images_per_class):
                # One generator per image: an image does not depend on how many others are drawn.
                rng = np.random.default_rng([seed, domain_index, int(digit), index])
                image = _render_digit(digit, style, fonts, image_size, rng)
                image.save(class_dir / f"{index:04d}.png", optimize=False)
        folders[domain] = domain_dir
    return folders


def _render_digit(digit: str, style: _Style, fonts: list[Path], size: int, rng: np.random.Generator) -> Image.Image:
    canvas = size * _SUPERSAMPLING
    if style.colour:
        background, ink = _contrasting_colours(rng)
    else:
        background, ink = (int(rng.integers(225, 256)),) * 3, (int(rng.integers(0, 40)),) * 3
    font_path = fonts[int(rng.integers(len(fonts)))]
    scale = rng.uniform(*style.scale_range)
    font = ImageFont.truetype(str(font_path), size=int(canvas * scale))

    layer = Image.new("RGB", (canvas, canvas), background)
    draw = ImageDraw.Draw(layer)
    left, top, right, bottom = draw.textbbox((0, 0), digit, font=font)
    shift = style.shift_fraction * canvas
    x = (canvas - (right - left)) / 2 - left + rng.uniform(-shift, shift)
    y = (canvas - (bottom - top)) / 2 - top + rng.uniform(-shift, shift)
    draw.text((x, y), digit, font=font, fill=ink)
    angle = rng.uniform(-style.rotation_degrees, style.rotation_degrees)
    layer = layer.rotate(angle, resample=Image.Resampling.BICUBIC, fillcolor=background)
    image = layer.resize((size, size), resample=Image.Resampling.LANCZOS)

    pixels = np.asarray(image, dtype=np.float32)
    if style.noise_std:
        pixels = pixels + rng.normal(0.0, style.noise_std, pixels.shape)
    pixels = np.clip(np.rint(pixels), 0, 255).astype(np.uint8)
    return Image.fromarray(pixels) if style.colour else Image.fromarray(pixels[..., 0])


def _contrasting_colours(rng: np.random.Generator) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """A saturated background and an ink far from it in brightness (dark on light or light on dark)."""
    hue_background, hue_ink = rng.uniform(0, 1, 2)
    dark_background = rng.uniform() < 0.5
    background_value = rng.uniform(0.1, 0.3) if dark_background else rng.uniform(0.8, 1.0)
    ink_value = rng.uniform(0.85, 1.0) if dark_background else rng.uniform(0.0, 0.25)
    background = _hsv_to_rgb(hue_background, rng.uniform(0.5, 1.0), background_value)
    ink = _hsv_to_rgb(hue_ink, rng.uniform(0.3, 1.0), ink_value)
    return background, ink


def _hsv_to_rgb(hue: float, saturation: float, value: float) -> tuple[int, int, int]:
    return tuple(round(channel * 255) for channel in colorsys.hsv_to_rgb(hue, saturation, value))


def _matplotlib_fonts_dir() -> Path:
    import matplotlib

    fonts_dir = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    missing = [name for style in _STYLES.values() for name in style.fonts if not (fonts_dir / name).is_file()]
    if missing:
        raise FileNotFoundError(f"fonts {', '.join(missing)} not found in {fonts_dir} (matplotlib's bundled fonts)")
    return fonts_dir

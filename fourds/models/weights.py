"""Classifier weight files without pickle: safetensors with metadata, or torch weights-only state dicts.

A teacher arrives from outside (a registry, a colleague, a download), so loading it
must never execute code, and every way a file can be wrong for the run (other
architecture, other classes, a pickled model, a broken file) is reported by name
instead of surfacing as a shape error deep inside a training step.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from fourds.models.zoo import STEMS, build_classifier

SAFETENSORS_SUFFIXES = (".safetensors",)
TORCH_SUFFIXES = (".pt", ".pth", ".bin")
_RESERVED_KEYS = ("arch", "classes", "stem", "num_classes")
EXTRA_STATE_PREFIX = "extra."
"""Tensors saved beside a classifier's own (e.g. an adapted teacher's adapters) are named ``extra.<name>``."""
_EXAMPLES = 3  # how many offending keys an error message names


class WeightsError(ValueError):
    """A weights file cannot be used as the requested classifier; the message names the file and why."""


@dataclass
class ClassifierInfo:
    """What a weights file says about the classifier it holds."""

    arch: str
    classes: list[str]
    stem: str = "imagenet"
    metadata: dict[str, str] = field(default_factory=dict)
    """Extra metadata strings saved with the weights (lineage, run ids, ...)."""


def save_classifier(
    model: nn.Module,
    path: str | Path,
    *,
    arch: str,
    classes: list[str],
    stem: str = "imagenet",
    metadata: dict[str, str] | None = None,
    extra_state: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write ``model``'s weights as safetensors, with arch, classes and stem in the header.

    ``extra_state``: tensors that belong with the classifier but are not part of it (an adapted
    teacher's adapters); only :func:`load_classifier_with_extra_state` loads such a file.
    """
    path = Path(path)
    if path.suffix not in SAFETENSORS_SUFFIXES:
        raise ValueError(f"save_classifier writes safetensors: {path} should end in .safetensors")
    _check_classes(classes, where=f"classes to save in {path}")
    if stem not in STEMS:
        raise ValueError(f"unknown stem {stem!r} for {path}: expected one of {', '.join(STEMS)}")
    extra = dict(metadata or {})
    clashes = sorted(set(extra) & set(_RESERVED_KEYS))
    if clashes:
        raise ValueError(f"metadata keys {clashes} are reserved for the classifier description in {path}")
    not_strings = sorted(key for key, value in extra.items() if not (isinstance(key, str) and isinstance(value, str)))
    if not_strings:
        raise ValueError(f"metadata for {path} must map strings to strings; offending keys: {not_strings}")

    state = {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()}
    _check_state_matches(state, arch=arch, classes=classes, stem=stem, source=f"the model being saved to {path}")
    state |= {f"{EXTRA_STATE_PREFIX}{name}": tensor.detach().cpu().contiguous()
              for name, tensor in (extra_state or {}).items()}
    header = {
        **extra,
        "arch": arch,
        "classes": json.dumps(list(classes)),
        "stem": stem,
        "num_classes": str(len(classes)),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata=header)
    return path


def load_classifier(
    path: str | Path,
    *,
    arch: str | None = None,
    classes: list[str] | None = None,
    stem: str | None = None,
) -> tuple[nn.Module, ClassifierInfo]:
    """Build the classifier a weights file holds and load it (in eval mode).

    ``arch``/``classes``/``stem`` are what the caller expects: with a safetensors file
    they are checked against its metadata; a ``.pt``/``.pth`` state dict has no
    metadata, so ``arch`` and ``classes`` must be given.
    """
    model, info, extra_state = load_classifier_with_extra_state(path, arch=arch, classes=classes, stem=stem)
    if extra_state:
        raise _more_than_a_classifier(path, extra_state)
    return model, info


def load_classifier_with_extra_state(
    path: str | Path,
    *,
    arch: str | None = None,
    classes: list[str] | None = None,
    stem: str | None = None,
) -> tuple[nn.Module, ClassifierInfo, dict[str, torch.Tensor]]:
    """:func:`load_classifier`, plus the ``extra_state`` the file was saved with (names without the prefix)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    if path.suffix in SAFETENSORS_SUFFIXES:
        state, header = _read_safetensors(path)
    elif path.suffix in TORCH_SUFFIXES:
        state, header = _read_torch_state_dict(path), {}
    else:
        raise _unsupported_format(path)

    extra_state = {name.removeprefix(EXTRA_STATE_PREFIX): tensor for name, tensor in state.items()
                   if name.startswith(EXTRA_STATE_PREFIX)}
    state = {name: tensor for name, tensor in state.items() if not name.startswith(EXTRA_STATE_PREFIX)}
    info = _resolve_info(path, header, arch=arch, classes=classes, stem=stem)
    _check_file_shapes(path, {name: tuple(tensor.shape) for name, tensor in state.items()}, info)
    model = build_classifier(info.arch, len(info.classes), stem=info.stem)
    model.load_state_dict(state, strict=True)
    model.eval()
    return model, info, extra_state


def read_classifier_info(
    path: str | Path,
    *,
    arch: str | None = None,
    classes: list[str] | None = None,
    stem: str | None = None,
) -> ClassifierInfo:
    """What :func:`load_classifier` would load, checked without loading it: for a check before a run starts.

    A safetensors file is judged by its header alone (metadata and tensor shapes, compared
    with the architecture's own); a ``.pt``/``.pth`` file says nothing about itself, so it
    needs ``arch`` and ``classes`` and is read in full (weights only). Raises the same
    :class:`WeightsError` as :func:`load_classifier`.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    if path.suffix in SAFETENSORS_SUFFIXES:
        shapes, header = _read_safetensors_header(path)
    elif path.suffix in TORCH_SUFFIXES:
        _resolve_info(path, {}, arch=arch, classes=classes, stem=stem)  # says what is missing before reading
        shapes, header = {name: tuple(tensor.shape) for name, tensor in _read_torch_state_dict(path).items()}, {}
    else:
        raise _unsupported_format(path)
    extra = sorted(name for name in shapes if name.startswith(EXTRA_STATE_PREFIX))
    if extra:
        raise _more_than_a_classifier(path, extra)
    info = _resolve_info(path, header, arch=arch, classes=classes, stem=stem)
    _check_file_shapes(path, shapes, info)
    return info


def _unsupported_format(path: Path) -> WeightsError:
    return WeightsError(
        f"{path}: unsupported weights format {path.suffix!r}; expected {', '.join(SAFETENSORS_SUFFIXES + TORCH_SUFFIXES)}"
    )


def _more_than_a_classifier(path: Path, extra_names) -> WeightsError:
    names = sorted(extra_names)
    return WeightsError(
        f"{path} holds more than a classifier: {len(names)} extra tensors (e.g. {', '.join(names[:_EXAMPLES])}); "
        "an adapted teacher loads with fourds.method.adapted_teacher.load_adapted_teacher"
    )


def _check_file_shapes(path: Path, shapes: dict[str, tuple[int, ...]], info: ClassifierInfo) -> None:
    try:
        _check_shapes_match(shapes, arch=info.arch, classes=info.classes, stem=info.stem, source=str(path))
    except WeightsError:
        raise
    except ValueError as exc:  # e.g. an architecture name torchvision does not know
        raise WeightsError(f"{path}: {exc}") from exc


def _read_safetensors_header(path: Path) -> tuple[dict[str, tuple[int, ...]], dict[str, str]]:
    """Tensor shapes and metadata, without reading the tensors (safetensors checks the sizes add up)."""
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            header = dict(handle.metadata() or {})
            shapes = {name: tuple(handle.get_slice(name).get_shape()) for name in handle.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(f"{path} is not a readable safetensors file (corrupt or truncated?): {exc}") from exc
    return shapes, header


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            header = dict(handle.metadata() or {})
            state = {name: handle.get_tensor(name) for name in handle.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(f"{path} is not a readable safetensors file (corrupt or truncated?): {exc}") from exc
    return state, header


def _read_torch_state_dict(path: Path) -> dict[str, torch.Tensor]:
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Unsupported global" in str(exc):
            raise WeightsError(
                f"{path} is a pickled model, not a weights file (torch.load refuses to run its code); "
                "save model.state_dict() or use safetensors"
            ) from exc
        raise WeightsError(f"{path} is not a readable torch weights file (corrupt or truncated?)") from exc
    except (RuntimeError, OSError, EOFError) as exc:
        raise WeightsError(f"{path} is not a readable torch weights file (corrupt or truncated?): {exc}") from exc
    if isinstance(loaded, nn.Module):
        raise WeightsError(f"{path} is a pickled model, not a weights file; save model.state_dict() or use safetensors")
    if isinstance(loaded, dict):
        for wrapper_key in ("state_dict", "model_state_dict"):
            if isinstance(loaded.get(wrapper_key), dict):
                loaded = loaded[wrapper_key]
                break
    if not isinstance(loaded, dict) or not all(
        isinstance(key, str) and isinstance(value, torch.Tensor) for key, value in loaded.items()
    ):
        raise WeightsError(f"{path} does not hold a state dict (a mapping of parameter names to tensors)")
    if loaded and all(key.startswith("module.") for key in loaded):  # saved from DataParallel
        loaded = {key.removeprefix("module."): value for key, value in loaded.items()}
    return loaded


def _resolve_info(
    path: Path, header: dict[str, str], *, arch: str | None, classes: list[str] | None, stem: str | None
) -> ClassifierInfo:
    file_arch = header.get("arch")
    if arch is not None and file_arch is not None and arch != file_arch:
        raise WeightsError(f"{path} holds weights for {file_arch} (per its metadata), expected {arch}")
    resolved_arch = arch or file_arch
    if resolved_arch is None:
        raise WeightsError(
            f"{path} does not say which architecture it holds (no 'arch' in its header): register it with "
            f"'fourds teacher import {path} --arch ARCH --classes NAMES' and use the registered teacher "
            "(from Python: pass arch=, e.g. 'resnet34')"
        )

    file_classes = _header_classes(path, header)
    if classes is not None:
        _check_classes(classes, where="expected classes")
        if file_classes is not None:
            _compare_classes(path, file_classes=file_classes, expected=list(classes))
    resolved_classes = list(classes) if classes is not None else file_classes
    if resolved_classes is None:
        raise WeightsError(
            f"{path} does not list its classes (no 'classes' in its header): register it with "
            f"'fourds teacher import {path} --arch {resolved_arch} --classes NAMES' (the class names in label "
            "order) and use the registered teacher (from Python: pass classes=)"
        )

    file_stem = header.get("stem")
    if stem is not None and file_stem is not None and stem != file_stem:
        raise WeightsError(f"{path} holds a {resolved_arch} with stem {file_stem!r}, expected stem {stem!r}")
    resolved_stem = stem or file_stem or "imagenet"
    if resolved_stem not in STEMS:
        raise WeightsError(f"{path}: unknown stem {resolved_stem!r}; expected one of {', '.join(STEMS)}")

    extra = {key: value for key, value in header.items() if key not in _RESERVED_KEYS}
    return ClassifierInfo(arch=resolved_arch, classes=resolved_classes, stem=resolved_stem, metadata=extra)


def _header_classes(path: Path, header: dict[str, str]) -> list[str] | None:
    if "classes" not in header:
        return None
    try:
        classes = json.loads(header["classes"])
    except json.JSONDecodeError as exc:
        raise WeightsError(f"{path}: metadata 'classes' is not valid JSON: {exc}") from exc
    if not isinstance(classes, list) or not all(isinstance(name, str) for name in classes):
        raise WeightsError(f"{path}: metadata 'classes' must be a JSON list of class names")
    return classes


def _check_classes(classes: list[str], *, where: str) -> None:
    if not classes:
        raise ValueError(f"{where}: the class list is empty")
    if not all(isinstance(name, str) for name in classes):
        raise ValueError(f"{where}: class names must be strings")
    duplicates = sorted({name for name in classes if classes.count(name) > 1})
    if duplicates:
        raise ValueError(f"{where}: duplicate class names {duplicates}")


def _compare_classes(path: Path, *, file_classes: list[str], expected: list[str]) -> None:
    if len(file_classes) != len(expected):
        raise WeightsError(
            f"{path} holds a classifier for {len(file_classes)} classes, expected {len(expected)} "
            f"(file: {file_classes}; expected: {expected})"
        )
    if file_classes == expected:
        return
    only_in_file = [name for name in file_classes if name not in expected]
    only_expected = [name for name in expected if name not in file_classes]
    if only_in_file or only_expected:
        raise WeightsError(
            f"{path} holds different class names than expected: "
            f"only in the file {only_in_file}, only expected {only_expected}"
        )
    moved = [
        f"{index}: file {found!r} vs expected {wanted!r}"
        for index, (found, wanted) in enumerate(zip(file_classes, expected))
        if found != wanted
    ]
    raise WeightsError(
        f"{path} holds the expected classes in another order (label indices would be wrong): {'; '.join(moved)}"
    )


def _check_state_matches(
    state: dict[str, torch.Tensor], *, arch: str, classes: list[str], stem: str, source: str
) -> None:
    """Raise a WeightsError summarising how ``state`` differs from ``arch``'s own state dict."""
    shapes = {key: tuple(tensor.shape) for key, tensor in state.items()}
    _check_shapes_match(shapes, arch=arch, classes=classes, stem=stem, source=source)


def _check_shapes_match(
    state: dict[str, tuple[int, ...]], *, arch: str, classes: list[str], stem: str, source: str
) -> None:
    """Raise a WeightsError summarising how the tensor shapes ``state`` differ from ``arch``'s own state dict."""
    expected = _expected_shapes(arch, len(classes), stem)
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    mismatched = [key for key in expected if key in state and state[key] != expected[key]]
    if not (missing or unexpected or mismatched):
        return
    if not missing and not unexpected:
        found_classes = {state[key][0] for key in mismatched if state[key]}
        head_only = all(
            len(state[key]) >= 1
            and expected[key][0] == len(classes)
            and state[key][1:] == expected[key][1:]
            for key in mismatched
        )
        if head_only and len(found_classes) == 1:
            raise WeightsError(
                f"{source} holds a classifier head for {found_classes.pop()} classes, expected {len(classes)} "
                f"(classes: {classes})"
            )
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys e.g. {', '.join(missing[:_EXAMPLES])}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys e.g. {', '.join(unexpected[:_EXAMPLES])}")
    if mismatched:
        examples = ", ".join(f"{key} {state[key]} vs {expected[key]}" for key in mismatched[:_EXAMPLES])
        problems.append(f"{len(mismatched)} shape mismatches (file vs model) e.g. {examples}")
    raise WeightsError(
        f"{source} holds weights for a different architecture than {arch} (stem {stem!r}, "
        f"{len(classes)} classes): {'; '.join(problems)}"
    )


def _expected_shapes(arch: str, num_classes: int, stem: str) -> dict[str, tuple[int, ...]]:
    try:
        with torch.device("meta"):  # shapes only: no memory, no initialisation cost
            reference = build_classifier(arch, num_classes, stem=stem)
    except NotImplementedError:  # builders that need real tensors (RegNet)
        reference = build_classifier(arch, num_classes, stem=stem)
    return {key: tuple(tensor.shape) for key, tensor in reference.state_dict().items()}

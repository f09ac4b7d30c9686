"""``fourds distill --teacher FILE`` (issue 14, item 7): a bad weights file stops the command before the
pipeline starts (exit 2, one line naming the file), so nothing is ingested; a header-less file's message
says which command registers it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from fourds.models import build_classifier, save_classifier
from fourds_app.cli import main


@pytest.fixture(scope="module")
def teacher_state():
    return {key: value.contiguous() for key, value in build_classifier("resnet18", 2).state_dict().items()}


def header_less(folder: Path, state) -> Path:
    save_file(state, str(folder / "bare.safetensors"))
    return folder / "bare.safetensors"


def truncated(folder: Path, state) -> Path:
    save_file(state, str(folder / "whole.safetensors"))
    (folder / "truncated.safetensors").write_bytes((folder / "whole.safetensors").read_bytes()[:4096])
    return folder / "truncated.safetensors"


def another_architecture(folder: Path, state) -> Path:
    save_file(state, str(folder / "claims-resnet50.safetensors"),
              metadata={"arch": "resnet50", "classes": '["cat", "dog"]'})
    return folder / "claims-resnet50.safetensors"


def torch_state_dict(folder: Path, state) -> Path:
    torch.save(state, folder / "teacher.pt")
    return folder / "teacher.pt"


def not_weights(folder: Path, state) -> Path:
    (folder / "teacher.onnx").write_bytes(b"an onnx model is not a teacher")
    return folder / "teacher.onnx"


CASES = {
    header_less: "does not say which architecture it holds",
    truncated: "is not a readable safetensors file (corrupt or truncated?)",
    another_architecture: "holds weights for a different architecture than resnet50",
    torch_state_dict: "does not say which architecture it holds",
    not_weights: "unsupported weights format '.onnx'",
}


@pytest.mark.parametrize("make_file", list(CASES), ids=lambda make: make.__name__)
def test_a_bad_teacher_file_exits_2_before_anything_is_ingested(capsys, tmp_path, workspace, teacher_state,
                                                                 make_file):
    inputs = tmp_path / "inputs"
    for label in ("cat", "dog"):
        (inputs / "sketches" / label).mkdir(parents=True)
    weights = make_file(inputs, teacher_state)
    before = sorted(workspace.root.rglob("*"))

    with pytest.raises(SystemExit) as finished:
        main(["distill", "--domain", "sketches", "--data", str(inputs / "sketches"), "--teacher", str(weights),
              "--workspace", str(workspace.root)])
    err = capsys.readouterr().err

    assert finished.value.code == 2
    [line] = err.strip().splitlines()
    assert line.startswith(f"error: --teacher: {weights}")
    assert CASES[make_file] in line
    assert sorted(workspace.root.rglob("*")) == before  # not ingested, no run folder, no ZenML store


def test_a_header_less_file_tells_the_cli_user_to_import_it(capsys, tmp_path, workspace, teacher_state):
    inputs = tmp_path / "inputs"
    (inputs / "sketches" / "cat").mkdir(parents=True)
    weights = header_less(inputs, teacher_state)

    with pytest.raises(SystemExit):
        main(["distill", "--domain", "sketches", "--data", str(inputs / "sketches"), "--teacher", str(weights),
              "--workspace", str(workspace.root)])

    assert f"'fourds teacher import {weights} --arch ARCH --classes NAMES'" in capsys.readouterr().err


def test_a_good_teacher_file_passes_the_check(tmp_path, workspace):
    from fourds_app.session import check_teacher_reference, open_session

    weights = save_classifier(build_classifier("resnet18", 2), tmp_path / "teacher.safetensors", arch="resnet18",
                              classes=["cat", "dog"])
    check_teacher_reference(open_session(workspace.root, None), str(weights))  # no error

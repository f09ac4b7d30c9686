"""DVC and git facts of the data folder, against real DVC and real git repositories."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from fourds.data.ingest import ingest_domain
from fourds.data.versioning import (
    DataVersionError,
    data_version,
    directory_md5,
    git_state,
    recorded_data_md5,
    track_data_folder,
)
from fourds.workspace import Workspace

from .images import make_image_folder


def _git(root, *args):
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)


def _git_repo(root):
    root.mkdir(parents=True, exist_ok=True)
    _git(root, "init", "-q")
    _git(root, "config", "user.email", "test@example.invalid")
    _git(root, "config", "user.name", "test")
    (root / "README").write_text("workspace\n")
    _git(root, "add", "README")
    _git(root, "commit", "-qm", "start")


def test_domain_md5_is_what_dvc_records_for_that_folder_alone(tmp_path, image_folder, workspace):
    result = ingest_domain(image_folder, "pets", workspace, progress=False)

    # A separate DVC project that tracks only a copy of this one domain folder.
    from dvc.repo import Repo

    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copytree(result.domain_dir, alone / "pets")
    with Repo.init(alone, no_scm=True) as repo:
        repo.add(str(alone / "pets"))
    recorded = yaml.safe_load((alone / "pets.dvc").read_text())["outs"][0]["md5"]

    assert result.domain_md5 == recorded == directory_md5(workspace, result.domain_dir)


def test_workspace_outside_git_is_initialised_without_scm(image_folder, workspace):
    result = ingest_domain(image_folder, "pets", workspace, progress=False)
    config = (workspace.root / ".dvc" / "config").read_text()
    assert "no_scm = True" in config and "analytics = False" in config
    assert (result.git_revision, result.data_dvc_dirty) == (None, None)
    assert git_state(workspace) == (None, None)


def test_git_revision_and_dirty_data_dvc(tmp_path, image_folder):
    root = tmp_path / "project"
    _git_repo(root)
    workspace = Workspace(root)

    first = ingest_domain(image_folder, "pets", workspace, progress=False)
    head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
    head = head.stdout.strip()
    assert first.git_revision == head
    assert first.data_dvc_dirty is True  # data.dvc is not committed yet
    assert "/data" in (root / ".gitignore").read_text().splitlines()  # dvc add keeps data/ out of git
    assert "no_scm" not in (root / ".dvc" / "config").read_text()

    _git(root, "add", "data.dvc", ".gitignore", ".dvc", ".dvcignore")
    _git(root, "commit", "-qm", "data")
    committed = data_version(workspace, "pets")
    assert committed.data_dvc_dirty is False and committed.git_revision != head

    make_image_folder(image_folder, {"new": 2}, first_seed=700)
    assert ingest_domain(image_folder, "pets", workspace, progress=False).data_dvc_dirty is True


def test_workspace_in_a_git_subfolder(tmp_path, image_folder):
    _git_repo(tmp_path / "repo")
    workspace = Workspace(tmp_path / "repo" / "nested" / "ws")
    result = ingest_domain(image_folder, "pets", workspace, progress=False)
    assert result.git_revision is not None and result.data_dvc_dirty is True
    assert (workspace.root / "data.dvc").is_file()


def test_existing_gitignore_entry_is_not_duplicated(tmp_path, image_folder):
    root = tmp_path / "project"
    _git_repo(root)
    (root / ".gitignore").write_text(".venv/\n/data/\n")
    ingest_domain(image_folder, "pets", Workspace(root), progress=False)
    assert (root / ".gitignore").read_text() == ".venv/\n/data/\n"


def test_staging_folders_are_ignored_by_dvc(image_folder, workspace):
    before = ingest_domain(image_folder, "pets", workspace, progress=False).data_md5
    leftover = workspace.domains_dir / ".staging-pets-deadbeef" / "images" / "cat"
    make_image_folder(leftover.parent, {"cat": 2}, first_seed=800)
    assert track_data_folder(workspace) == before


def test_dvc_project_set_up_before_fourds_gets_the_staging_ignore(image_folder, workspace):
    from dvc.repo import Repo

    workspace.root.mkdir(parents=True)
    Repo.init(workspace.root, no_scm=True).close()
    first = ingest_domain(image_folder, "pets", workspace, progress=False)
    again = ingest_domain(image_folder, "pets", workspace, progress=False)  # the old version is staged aside
    assert again.data_md5 == first.data_md5
    assert "/data/domains/.staging-*" in (workspace.root / ".dvcignore").read_text().splitlines()


def test_ingest_survives_dvc_logging_to_a_closed_stream(image_folder, workspace):
    """DVC keeps the stdout of its import time; ZenML steps and pytest close such streams."""
    import io
    import logging

    import dvc.logger

    closed = io.StringIO()
    closed.close()
    handlers = [h for h in logging.getLogger("dvc").handlers if isinstance(h, dvc.logger.LoggerHandler)]
    assert handlers
    for handler in handlers:
        handler.stream = closed
    assert ingest_domain(image_folder, "pets", workspace, progress=False).num_images == 24


def test_version_errors_name_what_is_missing(workspace):
    with pytest.raises(DataVersionError, match="data.dvc not found"):
        recorded_data_md5(workspace)
    with pytest.raises(DataVersionError, match="domain 'absent' not found"):
        data_version(workspace, "absent")

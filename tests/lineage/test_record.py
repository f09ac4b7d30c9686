import subprocess

import pytest

from fourds.lineage.record import MISSING_TAG, LineageRecord, code_commit


def _complete_record() -> LineageRecord:
    return LineageRecord(
        domain="usps",
        method="4ds",
        student_method="4ds",
        guard="kept 4ds: validation accuracy 4ds 0.9000, scratch 0.8500 on 40 images (margin 0)",
        data_domain_md5="aa.dir",
        data_md5="bb.dir",
        data_dvc_remote="/srv/fourds/dvc-remote",
        data_git_revision="c0ffee",
        table_sha256="d" * 64,
        data_unlabelled_images=40,
        data_unlabelled_images_used=0,
        teacher_model_name="fourds-teacher",
        teacher_version="2",
        teacher_data_md5="ee.dir",
        code_commit="f00d",
        config_hash="1" * 64,
        zenml_run_id="run-1",
        gx_success=True,
        gx_result_uri="file:///tmp/gx.json",
        onnx_sha256="2" * 64,
        mlflow_run_id="abc",
        metrics={"test_accuracy": 0.875, "onnx_parity_max_abs_diff": 3e-7},
    )


def test_tags_round_trip_keeps_every_fact():
    record = _complete_record()
    tags = record.to_tags()

    assert all(key.startswith("fourds.") for key in tags)
    assert tags["fourds.gx_success"] == "true"
    assert tags["fourds.metric.test_accuracy"] == "0.875"
    assert (tags["fourds.data_unlabelled_images"], tags["fourds.data_unlabelled_images_used"]) == ("40", "0")
    assert MISSING_TAG not in tags
    assert LineageRecord.from_tags(tags) == record


def test_missing_facts_are_listed_not_invented():
    record = LineageRecord(domain="usps", gx_success=False)
    tags = record.to_tags()

    assert tags["fourds.gx_success"] == "false"
    assert "fourds.zenml_run_id" not in tags
    missing = tags[MISSING_TAG].split(",")
    assert "zenml_run_id" in missing and "metrics" in missing and "domain" not in missing

    rebuilt = LineageRecord.from_tags(tags)
    assert rebuilt.gx_success is False
    assert rebuilt.missing() == missing


def test_from_tags_ignores_foreign_tags_and_rejects_garbage():
    tags = {"mlflow.user": "x", "fourds.domain": "usps", "fourds.metric.test_accuracy": "0.5"}
    assert LineageRecord.from_tags(tags).metric("test_accuracy") == 0.5

    with pytest.raises(ValueError, match="fourds.gx_success"):
        LineageRecord.from_tags({"fourds.gx_success": "maybe"})
    with pytest.raises(ValueError, match="fourds.metric.test_accuracy"):
        LineageRecord.from_tags({"fourds.metric.test_accuracy": "high"})
    for garbage in ("many", "-1", "2.5"):
        with pytest.raises(ValueError, match=r"'fourds.data_unlabelled_images' must be a count"):
            LineageRecord.from_tags({"fourds.data_unlabelled_images": garbage})


def test_metric_hides_non_finite_values():
    record = LineageRecord(metrics={"a": float("nan"), "b": 1.0})
    assert record.metric("a") is None and record.metric("b") == 1.0 and record.metric("c") is None


def test_code_commit_reports_head_and_dirty_flag(tmp_path):
    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    assert code_commit(tmp_path) == "unknown"  # not a git checkout

    git("init", "-q")
    git("config", "user.email", "t@example.com")
    git("config", "user.name", "t")
    (tmp_path / "a.txt").write_text("one")
    git("add", "a.txt")
    git("commit", "-q", "-m", "one")
    head = subprocess.run(
        ["git", "-C", str(tmp_path), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()

    assert code_commit(tmp_path) == head
    (tmp_path / "a.txt").write_text("two")
    assert code_commit(tmp_path) == f"{head}-dirty"


def test_a_commit_pinned_by_the_launcher_wins_inside_images_without_git(monkeypatch):
    monkeypatch.delenv("FOURDS_CODE_COMMIT", raising=False)
    from_checkout = code_commit()
    assert from_checkout != "unknown"  # the test suite runs from a checkout
    monkeypatch.setenv("FOURDS_CODE_COMMIT", "0123abcd")
    assert code_commit() == "0123abcd"
    monkeypatch.setenv("FOURDS_CODE_COMMIT", "  ")
    assert code_commit() == from_checkout

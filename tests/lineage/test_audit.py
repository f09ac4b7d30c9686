"""Links of the lineage audit that need no registry: the facts a version's tags record, checked on their own."""

from __future__ import annotations

from fourds.lineage.audit import MISMATCH, data_link
from fourds.lineage.record import LineageRecord
from fourds.workspace import Workspace


def _data_record(**counts) -> LineageRecord:
    # No domain or data md5: the DVC part of the link is not reached, only the recorded facts are checked.
    return LineageRecord(table_sha256="d" * 64, **counts)


def _unlabelled_problems(link) -> list[str]:
    return [problem for problem in link.missing + link.mismatches if "unlabelled" in problem]


def test_a_version_registered_before_unlabelled_counts_existed_gets_a_note_not_a_missing_fact(tmp_path):
    link = data_link(_data_record(), Workspace(tmp_path))

    assert _unlabelled_problems(link) == []
    assert link.facts["unlabelled_images"] is None and link.facts["unlabelled_images_used"] is None
    assert link.notes == [
        "unlabelled_images and unlabelled_images_used not recorded (registered before fourds counted unlabelled images)"
    ]


def test_recorded_unlabelled_counts_are_facts_and_used_may_not_exceed_the_domains(tmp_path):
    workspace = Workspace(tmp_path)
    consistent = data_link(_data_record(data_unlabelled_images=40, data_unlabelled_images_used=40), workspace)
    assert _unlabelled_problems(consistent) == [] and consistent.notes == []
    assert (consistent.facts["unlabelled_images"], consistent.facts["unlabelled_images_used"]) == (40, 40)

    inflated = data_link(_data_record(data_unlabelled_images=40, data_unlabelled_images_used=41), workspace)
    assert inflated.status == MISMATCH
    assert inflated.mismatches == [
        "unlabelled images used: the lineage tags record 41, more than the 40 unlabelled images they record in the domain"
    ]

    one_missing = data_link(_data_record(data_unlabelled_images=40), workspace)
    assert _unlabelled_problems(one_missing) == []
    assert one_missing.notes == ["unlabelled_images_used not recorded (registered before fourds counted unlabelled images)"]


def test_a_config_logged_before_a_field_existed_still_matches_its_recorded_hash(workspace):
    """The code link re-hashes the configuration as it was logged, not as today's RunConfig would fill it in."""
    import mlflow
    import yaml
    from mlflow import MlflowClient

    from fourds.config import RunConfig
    from fourds.hashing import canonical_json_sha256
    from fourds.lineage.audit import code_link
    from fourds.tracking import CONFIG_ARTIFACT, experiment_for_domain

    older = RunConfig().model_dump(mode="json")
    del older["data"]["dvc_remote"]  # as a run logged it before the field was added
    with mlflow.start_run(experiment_id=experiment_for_domain("usps")) as run:
        mlflow.log_text(yaml.safe_dump(older, sort_keys=False), CONFIG_ARTIFACT)
    record = LineageRecord(code_commit="f00d", config_hash=canonical_json_sha256(older), mlflow_run_id=run.info.run_id)

    link = code_link(MlflowClient(), record)

    assert link.mismatches == [] and link.missing == [], link
    assert canonical_json_sha256(older) != RunConfig().config_hash(), "premise: today's defaults hash differently"

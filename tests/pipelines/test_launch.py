"""The launcher on the real ZenML local store: failures name the step and keep the library's message."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pytest
from zenml import pipeline, step
from zenml.enums import ExecutionMode

from fourds.config import ConfigError, RunConfig, load_config
from pipelines.launch import PipelineRunFailed, launch, new_run_name, zenml_run_options

pytestmark = pytest.mark.slow


class BrokenImagesError(ValueError):
    pass


@step(enable_cache=False)
def count_images(number: int) -> Annotated[int, "image_count"]:
    if number < 0:
        raise BrokenImagesError("unreadable: cat/001.png, dog/007.png")
    return number


@step(enable_cache=False)
def double(count: int) -> Annotated[int, "doubled"]:
    return 2 * count


@pipeline(name="fourds_launch_probe", enable_cache=False, execution_mode=ExecutionMode.FAIL_FAST)
def probe_pipeline(number: int) -> None:
    double(count_images(number))


@step(enable_cache=False)
def hash_config(config: RunConfig) -> Annotated[str, "config_hash"]:
    return config.config_hash()


@pipeline(name="fourds_config_probe", enable_cache=False)
def config_probe_pipeline(config: RunConfig) -> None:
    hash_config(config)


def test_run_config_reaches_steps_unchanged(zenml_store):
    config = load_config(overrides={"method": "kd", "data": {"mean": [0.5, 0.5, 0.5], "label_budget": 10}})
    outcome = launch(config_probe_pipeline, run_name=new_run_name("probe", "config"), params={"config": config})

    assert outcome.outputs["config_hash"] == config.config_hash()


def test_successful_run_reports_outputs_and_step_times(zenml_store):
    outcome = launch(probe_pipeline, run_name=new_run_name("probe", "ok"), params={"number": 3})

    assert outcome.outputs == {"image_count": 3, "doubled": 6}
    assert set(outcome.step_seconds) == {"count_images", "double"}
    assert 0 < outcome.steps_total_seconds < outcome.wall_seconds


def test_failed_step_is_named_with_its_message_and_later_steps_do_not_run(zenml_store):
    from zenml.client import Client

    run_name = new_run_name("probe", "broken")
    with pytest.raises(PipelineRunFailed) as failure:
        launch(probe_pipeline, run_name=run_name, params={"number": -1})

    assert failure.value.step == "count_images"
    assert "cat/001.png, dog/007.png" in str(failure.value)
    assert isinstance(failure.value.__cause__, BrokenImagesError)
    steps = Client().get_pipeline_run(run_name).steps
    assert "double" not in steps or str(steps["double"].status) != "completed"


def test_zenml_options_of_the_repository_config_reach_the_run(zenml_store):
    from zenml.client import Client

    options = zenml_run_options(Path(__file__).resolve().parents[2] / "zenml_config.yaml")
    run_name = new_run_name("probe", "options")
    launch(probe_pipeline, run_name=run_name, params={"number": 1}, zenml_options=options)

    run = Client().get_pipeline_run(run_name)
    assert "fourds" in {tag.name for tag in run.tags}
    assert run.config.enable_cache is False


def test_zenml_options_come_from_the_file_without_its_parameters(tmp_path):
    config_file = tmp_path / "zenml_config.yaml"
    config_file.write_text("enable_cache: false\ntags: [nightly]\nparameters:\n  config:\n    method: kd\n")
    assert zenml_run_options(config_file) == {"enable_cache": False, "tags": ["nightly"]}

    bare = tmp_path / "run.yaml"
    bare.write_text("method: kd\n")
    assert zenml_run_options(bare) == {}


def test_run_parameters_in_the_file_are_refused_with_their_name(tmp_path):
    config_file = tmp_path / "zenml_config.yaml"
    config_file.write_text("parameters:\n  domain: sketches\n  config: {}\n")
    with pytest.raises(ConfigError, match="parameters.domain"):
        zenml_run_options(config_file)

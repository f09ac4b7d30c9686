"""The deploy/ recipes are what ZenML 0.98 and fourds accept: every key known, every value valid.

Offline checks against ZenML's own configuration classes (no store, no cluster). The
Kubeflow recipe is also registered and compiled for real in test_kubeflow_compile.py.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from fourds.config import load_config
from pipelines.launch import zenml_run_options

MISSING_EXTRA = [name for name in ("kfp", "kubernetes", "s3fs") if importlib.util.find_spec(name) is None]
# ZenML's Kubernetes and Kubeflow configuration classes need the integration's packages.
needs_extra = pytest.mark.skipif(
    bool(MISSING_EXTRA),
    reason=f"the Kubeflow extra is not installed (missing {', '.join(MISSING_EXTRA)}): "
    "pip install .[kubeflow], or a venv from requirements-kubeflow.lock",
)
DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
RECIPES = ["kubeflow", "kubernetes"]
RECIPE_VARIABLES = {
    "FOURDS_KUBEFLOW_HOST": "https://kubeflow.example.com/pipeline",
    "FOURDS_KUBE_CONTEXT": "my-cluster",
    "FOURDS_ARTIFACT_STORE": "s3://my-bucket/fourds/zenml",
    "FOURDS_S3_ENDPOINT": "http://minio-service.kubeflow:9000",
    "FOURDS_CONTAINER_REGISTRY": "registry.example.com/fourds",
}


def flavor_config_classes() -> dict[tuple[str, str], type]:
    from zenml.container_registries.default_container_registry import DefaultContainerRegistryFlavor
    from zenml.image_builders import LocalImageBuilderFlavor
    from zenml.integrations.kubeflow.flavors import KubeflowOrchestratorFlavor
    from zenml.integrations.kubernetes.flavors import KubernetesOrchestratorFlavor
    from zenml.integrations.s3.flavors import S3ArtifactStoreFlavor

    flavors = [KubeflowOrchestratorFlavor(), KubernetesOrchestratorFlavor(), S3ArtifactStoreFlavor(),
               DefaultContainerRegistryFlavor(), LocalImageBuilderFlavor()]
    return {(str(flavor.type), flavor.name): flavor.config_class for flavor in flavors}


@needs_extra
@pytest.mark.parametrize("recipe", RECIPES)
def test_stack_recipe_components_match_zenml_flavors(recipe):
    text = (DEPLOY / recipe / "stack.yaml").read_text()
    stack = yaml.safe_load(os.path.expandvars(re.sub(r"\$\{(\w+)\}", lambda m: RECIPE_VARIABLES[m[1]], text)))
    config_classes = flavor_config_classes()

    assert stack["stack_name"] == f"fourds_{recipe}"
    assert stack["zenml_version"] == "0.98.0", "zenml stack import refuses other versions"
    assert {"orchestrator", "artifact_store", "container_registry", "image_builder"} <= set(stack["components"])
    for kind, component in stack["components"].items():
        config_class = config_classes[(kind, component["flavor"])]
        unknown = set(component["configuration"]) - set(config_class.model_fields)
        assert not unknown, f"{recipe} {kind}: keys ZenML does not know: {unknown}"
        config_class.model_validate(component["configuration"])


@pytest.mark.parametrize("recipe", RECIPES)
def test_run_config_is_a_zenml_run_configuration_with_a_valid_run_config(recipe):
    from zenml.config import DockerSettings
    from zenml.config.pipeline_run_configuration import PipelineRunConfiguration

    path = DEPLOY / recipe / "run_config.yaml"
    options = zenml_run_options(path)
    PipelineRunConfiguration.model_validate(options)
    DockerSettings.model_validate(options["settings"]["docker"])
    assert (DEPLOY.parent / options["settings"]["docker"]["requirements"]).is_file()
    assert "MLFLOW_TRACKING_URI" in options["environment"]
    config = load_config(path)
    assert config.method == "4ds"
    assert config.data.dvc_remote.startswith("s3://")


@pytest.mark.parametrize("recipe", RECIPES)
def test_steps_share_no_disk_and_training_steps_are_retried(recipe):
    """Each step pod works in its own folder (no shared volume); what steps share goes through the artifact
    store, the DVC remote and MLflow; a killed training step is retried (and resumes from its checkpoint)."""
    from zenml.config.retry_config import StepRetryConfig

    options = zenml_run_options(DEPLOY / recipe / "run_config.yaml")
    assert options["environment"]["FOURDS_STEP_WORKSPACE"] == "/tmp/fourds"
    assert "FOURDS_HOME" not in options["environment"]
    assert options["secrets"] == ["fourds_s3_env"]
    assert "volumes" not in (options["settings"][f"orchestrator.{recipe}"].get("pod_settings") or {})
    for step in ("train_teacher_model", "distill_student"):
        retry = StepRetryConfig.model_validate(options["steps"][step]["retry"])
        assert retry.max_retries >= 1 and retry.backoff >= 1


@needs_extra
@pytest.mark.parametrize("recipe", RECIPES)
def test_orchestrator_settings_match_zenml(recipe):
    from zenml.integrations.kubeflow.flavors.kubeflow_orchestrator_flavor import KubeflowOrchestratorSettings
    from zenml.integrations.kubernetes.flavors.kubernetes_orchestrator_flavor import KubernetesOrchestratorSettings

    settings = zenml_run_options(DEPLOY / recipe / "run_config.yaml")["settings"][f"orchestrator.{recipe}"]
    settings_class = {"kubeflow": KubeflowOrchestratorSettings, "kubernetes": KubernetesOrchestratorSettings}[recipe]
    unknown = set(settings) - set(settings_class.model_fields)
    assert not unknown, f"{recipe}: orchestrator settings ZenML does not know: {unknown}"
    settings_class.model_validate(settings)


def test_register_script_refuses_to_start_without_its_variables(tmp_path):
    environment = {key: value for key, value in os.environ.items() if not key.startswith("FOURDS_")}
    completed = subprocess.run(["bash", str(DEPLOY / "register_stack.sh"), str(DEPLOY / "kubeflow" / "stack.yaml")],
                               env=environment, capture_output=True, text=True, timeout=60, check=False)

    assert completed.returncode != 0
    assert "set FOURDS_ARTIFACT_STORE, FOURDS_CONTAINER_REGISTRY, FOURDS_KUBEFLOW_HOST first" in completed.stderr

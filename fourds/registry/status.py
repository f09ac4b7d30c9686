"""The ``status`` view: every domain with a registered student, its champion and challenger."""

from __future__ import annotations

from dataclasses import dataclass

from mlflow import MlflowClient

from fourds.config import TrackingConfig
from fourds.lineage.record import LineageRecord
from fourds.registry.aliases import CHALLENGER, CHAMPION
from fourds.registry.versions import DOMAIN_TAG
from fourds.registry.promotion import ACCURACY_METRIC, SIZE_METRIC


@dataclass
class DomainStatus:
    domain: str
    model_name: str
    num_versions: int
    champion_version: str | None
    champion_accuracy: float | None
    champion_onnx_size_mb: float | None
    champion_since: str | None
    """When ``champion`` was last moved to this version (UTC, ISO 8601), if moved through fourds."""
    challenger_version: str | None
    challenger_accuracy: float | None
    champion_unlabelled_images: int | None = None
    """Unlabelled images in the domain data the champion was trained with (None: not recorded)."""
    champion_unlabelled_images_used: int | None = None
    """How many of them its training used."""


def domain_status(tracking: TrackingConfig | None = None) -> list[DomainStatus]:
    """One row per registered student model (``<student_model_prefix><domain>``), sorted by domain."""
    prefix = (tracking or TrackingConfig()).student_model_prefix
    client = MlflowClient()
    rows = []
    for model in _all_registered_models(client, prefix):
        versions = {str(v.version): v for v in client.search_model_versions(f"name='{model.name}'")}
        champion = versions.get(str(model.aliases.get(CHAMPION)))
        challenger = versions.get(str(model.aliases.get(CHALLENGER)))
        champion_facts, challenger_facts = _lineage(champion), _lineage(challenger)
        rows.append(
            DomainStatus(
                domain=model.tags.get(DOMAIN_TAG) or model.name.removeprefix(prefix),
                model_name=model.name,
                num_versions=len(versions),
                champion_version=str(champion.version) if champion else None,
                champion_accuracy=champion_facts.metric(ACCURACY_METRIC),
                champion_onnx_size_mb=champion_facts.metric(SIZE_METRIC),
                champion_since=champion.tags.get(f"fourds.alias.{CHAMPION}.set_at") if champion else None,
                challenger_version=str(challenger.version) if challenger else None,
                challenger_accuracy=challenger_facts.metric(ACCURACY_METRIC),
                champion_unlabelled_images=champion_facts.data_unlabelled_images,
                champion_unlabelled_images_used=champion_facts.data_unlabelled_images_used,
            )
        )
    return sorted(rows, key=lambda row: row.domain)


def render_status_table(rows: list[DomainStatus]) -> str:
    """A plain-text table for a terminal; ``-`` where a value is unknown."""
    if not rows:
        return "no student models registered yet"
    header = ["domain", "model", "versions", "champion", "accuracy", "onnx MB", "champion since", "challenger",
              "accuracy", "unlabelled used/all"]
    lines = [
        [
            row.domain,
            row.model_name,
            str(row.num_versions),
            _shown(row.champion_version),
            _shown(row.champion_accuracy, "{:.4f}"),
            _shown(row.champion_onnx_size_mb, "{:.2f}"),
            _shown(row.champion_since),
            _shown(row.challenger_version),
            _shown(row.challenger_accuracy, "{:.4f}"),
            _shown_unlabelled(row.champion_unlabelled_images_used, row.champion_unlabelled_images),
        ]
        for row in rows
    ]
    widths = [max(len(cell) for cell in column) for column in zip(header, *lines, strict=True)]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
                     for line in [header, *lines])


def _all_registered_models(client: MlflowClient, prefix: str):
    # LIKE treats '_' and '%' as wildcards: filter exactly in Python as well.
    token = None
    while True:
        page = client.search_registered_models(filter_string=f"name LIKE '{prefix}%'", page_token=token)
        yield from (model for model in page if model.name.startswith(prefix))
        token = page.token
        if not token:
            return


def _lineage(version) -> LineageRecord:
    """The lineage facts tagged on ``version``; none for no version, or one whose ``fourds.*`` tags do not parse
    (shown as ``-``; ``fourds lineage`` names the bad tag)."""
    if version is None:
        return LineageRecord()
    try:
        return LineageRecord.from_tags(version.tags)
    except ValueError:
        return LineageRecord()


def _shown_unlabelled(used: int | None, in_domain: int | None) -> str:
    return "-" if used is None or in_domain is None else f"{used}/{in_domain}"


def _shown(value, template: str = "{}") -> str:
    return "-" if value is None else template.format(value)

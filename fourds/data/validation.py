"""The Great Expectations suite on a domain's per-image table (pipeline step 2).

GX 1.x is called directly (ZenML's GX integration supports only GX < 1). Three tables
are validated, each check a real GX expectation so that it appears in the report:

* ``images``: the per-image table itself, plus whether each file exists on disk;
* ``class_counts``: one row per class (empty class folders included) with its image count;
* ``content_splits``: one row per distinct content hash with the number of labelled splits
  it is in, and whether it is both a test image and an unlabelled one.

Unlabelled images (split ``unlabelled``) must exist, decode and meet the mode and size
bounds like any image; having no label, they are left out of the label check and the
class counts. They may repeat labelled training images, but never a test image: they
are trained on, and the test split must stay unseen.

The JSON result and GX data docs (HTML) are written to ``report_dir``. A failed suite
is a :class:`DataValidationError` naming each failing expectation with example files.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from fourds.config import ValidationConfig
from fourds.data.data_docs import make_offline
from fourds.data.sources import SPLITS, UNLABELLED_SPLIT
from fourds.data.table import TABLE_COLUMNS, ImageTableError, read_image_table

RESULTS_FILE = "validation.json"
DOCS_FOLDER = "data_docs"
MAX_EXAMPLES = 5
_SITE_NAME = "fourds_report"


class DataValidationError(Exception):
    """A domain failed its validation suite; ``report`` holds the details and the report paths."""

    def __init__(self, message: str, report: ValidationReport) -> None:
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class ExpectationFailure:
    """One failed expectation, in words, with up to a few offending files (or classes)."""

    expectation: str
    column: str | None
    description: str
    examples: list[str]
    table: str = "images"
    unexpected_count: int | None = None


@dataclass
class ValidationReport:
    success: bool
    results_json: Path
    html_report: Path
    failures: list[ExpectationFailure]
    statistics: dict = field(default_factory=dict)

    def raise_for_failure(self) -> None:
        """Raise :class:`DataValidationError` listing every failing expectation, if any failed."""
        if self.success:
            return
        evaluated = self.statistics.get("evaluated_expectations", "?")
        lines = [
            f"data validation failed: {len(self.failures)} of {evaluated} expectations (report: {self.html_report})"
        ]
        for failure in self.failures:
            where = f"{failure.table}.{failure.column}" if failure.column else failure.table
            count = f", {failure.unexpected_count} unexpected" if failure.unexpected_count else ""
            lines.append(f"- {failure.description} [{failure.expectation} on {where}{count}]")
            if failure.examples:
                lines.append(f"    e.g. {'; '.join(failure.examples)}")
        raise DataValidationError("\n".join(lines), self)


@dataclass(frozen=True)
class _TableCheck:
    """One derived table, the expectations on it, and the column that identifies an offending row."""

    name: str
    frame: pd.DataFrame
    expectations: list
    example_column: str
    example_format: str = "{}"


def validate_table(
    table: pd.DataFrame,
    images_dir: Path,
    classes: list[str],
    config: ValidationConfig,
    report_dir: Path,
    *,
    domain_classes: list[str] | None = None,
) -> ValidationReport:
    """Run the suite on ``table`` (images under ``images_dir``) against the teacher's ``classes``.

    ``domain_classes`` is the domain's own class list (``classes.json``, which keeps empty
    class folders); without it only the labels present in the table are counted, so an
    empty class cannot be seen. The report is written to ``report_dir`` (replaced if present).
    """
    missing = [column for column in TABLE_COLUMNS if column not in table.columns]
    if missing:
        raise ImageTableError(f"image table is missing column(s) {', '.join(missing)}")
    started = time.perf_counter()
    checks = _build_checks(table, Path(images_dir), classes, config, domain_classes)

    report_dir = Path(report_dir).resolve()
    docs_dir = report_dir / DOCS_FOLDER
    shutil.rmtree(docs_dir, ignore_errors=True)
    report_dir.mkdir(parents=True, exist_ok=True)

    context = _ephemeral_context(docs_dir)
    results = {check.name: _run_check(context, check) for check in checks}
    context.build_data_docs(site_names=[_SITE_NAME])
    # GX copies ~4 MB of logos and fonts into every site; the report reads fine without them.
    for decoration in ("images", "fonts"):
        shutil.rmtree(docs_dir / "static" / decoration, ignore_errors=True)

    failures = [failure for check in checks for failure in _failures_of(results[check.name], check)]
    evaluated = sum(len(result.results) for result in results.values())
    statistics = {
        "evaluated_expectations": evaluated,
        "successful_expectations": evaluated - len(failures),
        "unsuccessful_expectations": len(failures),
        "images": len(table),
        "classes": len(next(check.frame for check in checks if check.name == "class_counts")),
        "seconds": round(time.perf_counter() - started, 3),
    }
    success = not failures
    results_json = report_dir / RESULTS_FILE
    results_json.write_text(
        json.dumps(
            {
                "success": success,
                "statistics": statistics,
                "failures": [asdict(failure) for failure in failures],
                "validations": {name: result.to_json_dict() for name, result in results.items()},
            },
            indent=2,
            default=str,
        )
    )
    # GX's pages load their styling and the index's table from CDNs: make the site readable offline.
    html_report = make_offline(docs_dir, title=f"Data validation of {len(table)} images", success=success,
                               statistics=statistics, failures=[asdict(failure) for failure in failures])
    return ValidationReport(
        success=success,
        results_json=results_json,
        html_report=html_report,
        failures=failures,
        statistics=statistics,
    )


def validate_domain(
    domain_dir: Path, classes: list[str], config: ValidationConfig, report_dir: Path
) -> ValidationReport:
    """:func:`validate_table` on an ingested domain folder (``images.csv``, ``classes.json``, ``images/``)."""
    domain_dir = Path(domain_dir)
    table = read_image_table(domain_dir / "images.csv")
    classes_file = domain_dir / "classes.json"
    domain_classes = json.loads(classes_file.read_text()) if classes_file.is_file() else None
    return validate_table(table, domain_dir / "images", classes, config, report_dir, domain_classes=domain_classes)


def _build_checks(
    table: pd.DataFrame,
    images_dir: Path,
    classes: list[str],
    config: ValidationConfig,
    domain_classes: list[str] | None,
) -> list[_TableCheck]:
    import great_expectations.expectations as gxe

    images = table.loc[:, list(TABLE_COLUMNS)].copy()
    images["file_exists"] = [(images_dir / path).is_file() for path in images["path"]]
    decodable_only = {"row_condition": "decodable==True", "condition_parser": "pandas"}
    labelled_only = {"row_condition": f'split!="{UNLABELLED_SPLIT}"', "condition_parser": "pandas"}
    labelled = images[images["split"] != UNLABELLED_SPLIT]
    image_expectations = [
        gxe.ExpectTableRowCountToBeBetween(min_value=1, description="the domain has at least one image"),
        gxe.ExpectColumnValuesToBeInSet(
            column="file_exists", value_set=[True], description="every listed file exists under images/"
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column="decodable", value_set=[True], description="every file decodes as an image"
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column="label",
            value_set=list(classes),
            description="every label is in the teacher's class list (unlabelled images excepted)",
            **labelled_only,
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column="mode",
            value_set=list(config.allowed_modes),
            description=f"image mode is one of {', '.join(config.allowed_modes)} (validation.allowed_modes)",
            **decodable_only,
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="width",
            min_value=config.min_side,
            max_value=config.max_side,
            description=f"width within [{config.min_side}, {config.max_side}] (validation.min_side/max_side)",
            **decodable_only,
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="height",
            min_value=config.min_side,
            max_value=config.max_side,
            description=f"height within [{config.min_side}, {config.max_side}] (validation.min_side/max_side)",
            **decodable_only,
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column="split",
            value_set=[*SPLITS, UNLABELLED_SPLIT],
            description=f"split is one of {', '.join((*SPLITS, UNLABELLED_SPLIT))}",
        ),
        gxe.ExpectColumnValuesToBeUnique(column="path", description="each file is listed once"),
    ]

    counts = labelled["label"].value_counts()
    labels = sorted(set(domain_classes or []) | set(counts.index))
    class_counts = pd.DataFrame({"label": labels, "images": [int(counts.get(label, 0)) for label in labels]})
    largest = int(class_counts["images"].max()) if len(class_counts) else 0
    balance_floor = math.ceil(largest / config.max_class_imbalance)
    class_expectations = [
        gxe.ExpectColumnValuesToNotBeInSet(column="images", value_set=[0], description="no class is empty"),
        gxe.ExpectColumnValuesToBeBetween(
            column="images",
            min_value=config.min_images_per_class,
            description=f"every class has at least {config.min_images_per_class} images (validation.min_images_per_class)",
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="images",
            min_value=balance_floor,
            description=(
                f"class balance: every class has at least {balance_floor} images, the largest class ({largest}) "
                f"divided by validation.max_class_imbalance ({config.max_class_imbalance:g})"
            ),
        ),
    ]

    # split_count counts labelled splits only (nunique skips the blanked unlabelled rows).
    by_content = images.assign(labelled_split=images["split"].where(images["split"] != UNLABELLED_SPLIT))
    content_splits = (
        by_content.groupby("sha256", sort=True)
        .agg(
            split_count=("labelled_split", "nunique"),
            # Unlabelled images are trained on (label-free terms): a copy of a test image leaks the test split into
            # training, a copy of a val image biases what val selects (the scratch guard's student, best_val
            # weights). A copy of a train image is harmless.
            unlabelled_copy_of_held_out=(
                "split", lambda splits: UNLABELLED_SPLIT in set(splits) and bool({"val", "test"} & set(splits))
            ),
            paths=("path", lambda paths: " | ".join(sorted(paths)[:MAX_EXAMPLES])),
        )
        .reset_index()
    )
    content_expectations = [
        gxe.ExpectColumnValuesToBeBetween(
            column="split_count",
            max_value=1,
            description="no identical image content in two splits (train/val/test leakage)",
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column="unlabelled_copy_of_held_out",
            value_set=[False],
            description=(
                "no unlabelled image has the content of a validation or test image (held-out leakage into training)"
            ),
        ),
    ]
    return [
        _TableCheck("images", images, image_expectations, "path"),
        _TableCheck("class_counts", class_counts, class_expectations, "label", "class {!r}"),
        _TableCheck("content_splits", content_splits, content_expectations, "paths"),
    ]


def _ephemeral_context(docs_dir: Path):
    """An in-memory GX context whose only data docs site is ``docs_dir``."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    context.add_data_docs_site(
        _SITE_NAME,
        {
            "class_name": "SiteBuilder",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        },
    )
    return context


def _run_check(context, check: _TableCheck):
    import great_expectations as gx

    batch = (
        context.data_sources.add_pandas(f"domain_{check.name}")
        .add_dataframe_asset(check.name)
        .add_batch_definition_whole_dataframe("whole table")
    )
    suite = context.suites.add(gx.ExpectationSuite(name=check.name, expectations=check.expectations))
    validation = context.validation_definitions.add(gx.ValidationDefinition(name=check.name, data=batch, suite=suite))
    return validation.run(
        batch_parameters={"dataframe": check.frame},
        result_format={
            "result_format": "SUMMARY",
            "unexpected_index_column_names": [check.example_column],
            "partial_unexpected_count": MAX_EXAMPLES,
        },
    )


def _failures_of(result, check: _TableCheck) -> list[ExpectationFailure]:
    failures = []
    for outcome in result.results:
        if outcome.success:
            continue
        expectation = outcome.expectation_config
        details = outcome.result or {}
        examples = [
            check.example_format.format(row[check.example_column])
            for row in details.get("partial_unexpected_index_list") or []
        ]
        description = expectation.description or expectation.type
        if outcome.exception_info and outcome.exception_info.get("raised_exception"):
            description += f" (GX error: {outcome.exception_info.get('exception_message')})"
        if "observed_value" in details and not examples:
            description += f" (observed: {details['observed_value']})"
        failures.append(
            ExpectationFailure(
                expectation=expectation.type,
                column=expectation.kwargs.get("column"),
                description=description,
                examples=examples[:MAX_EXAMPLES],
                table=check.name,
                unexpected_count=details.get("unexpected_count"),
            )
        )
    return failures

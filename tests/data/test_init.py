"""The package's lazy exports: every name resolves, and ingesting imports neither torch nor GX."""

from __future__ import annotations

import subprocess
import sys

import pytest

import fourds.data


@pytest.mark.parametrize("name", fourds.data.__all__)
def test_every_export_resolves(name):
    assert getattr(fourds.data, name) is not None


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'ingest_folder'"):
        fourds.data.ingest_folder  # noqa: B018


def test_ingest_does_not_import_torch_or_great_expectations():
    code = (
        "import sys; import fourds.data.ingest; "
        "print(sorted(m for m in ('torch', 'great_expectations') if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"

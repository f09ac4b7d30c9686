"""Great Expectations data docs that read offline.

GX's pages take Bootstrap, Font Awesome, jQuery and bootstrap-table from CDNs, and its
``index.html`` is an empty table that JavaScript fills in: without internet (an
air-gapped site, a report opened from a run folder months later) the index shows
nothing and the other pages are unstyled. :func:`make_offline` removes every remote
stylesheet and script, links a small local stylesheet instead, and replaces the index
with a static page listing each check, its outcome and the failing rows, linking GX's
own validation and suite pages (which are static HTML).
"""

from __future__ import annotations

import html
import os
import re
from pathlib import Path

OFFLINE_STYLESHEET = "static/styles/fourds_offline.css"

_REMOTE_SCRIPT = re.compile(r"<script\b[^>]*\bsrc=[\"']https?://[^>]*>\s*</script>", re.IGNORECASE)
_REMOTE_LINK = re.compile(r"<link\b[^>]*\bhref=[\"']https?://[^>]*>", re.IGNORECASE)

_CSS = """\
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #212529;
       line-height: 1.45; font-size: 15px; }
a { color: #0b5ed7; } h1, h2, h3, h4, h5, h6, .h6 { margin: 0.6em 0 0.4em; }
.container-fluid, .fourds-report { padding: 0 1.5rem 1.5rem; }
.row { display: flex; flex-wrap: wrap; } .col-12 { flex: 0 0 100%; }
[class*="col-md-"], [class*="col-lg-"], [class*="col-xl-"] { flex: 1 1 0; min-width: 16rem; padding-right: 1rem; }
.card { border: 1px solid #dee2e6; border-radius: 6px; margin: 0 0 1rem; background: #fff; }
.card-header { background: #f1f3f5; padding: 0.5rem 0.9rem; border-bottom: 1px solid #dee2e6; font-weight: 600; }
.card-body { padding: 0.6rem 0.9rem; }
table { border-collapse: collapse; margin: 0.3rem 0 0.8rem; max-width: 100%; }
th, td { border: 1px solid #dee2e6; padding: 0.3rem 0.55rem; text-align: left; vertical-align: top; }
th { background: #f8f9fa; }
.table-responsive { overflow-x: auto; }
.alert { padding: 0.6rem 0.9rem; border-radius: 6px; margin: 0.5rem 0; background: #e9ecef; }
.alert-danger, .fourds-failed { background: #f8d7da; } .alert-success, .fourds-passed { background: #d1e7dd; }
.text-success { color: #198754; } .text-danger { color: #dc3545; } .text-muted { color: #6c757d; }
.d-none, .modal, .fade:not(.show).tab-pane { display: none; }
.d-flex { display: flex; } .sticky-top { position: sticky; top: 0; background: #fff; z-index: 2; }
.nav, .navbar, .breadcrumb { display: flex; flex-wrap: wrap; gap: 0.8rem; list-style: none; padding: 0.5rem 0;
                             margin: 0; align-items: center; }
.navbar { border-bottom: 1px solid #dee2e6; padding: 0.5rem 1.5rem; }
.btn { display: inline-block; border: 1px solid #adb5bd; border-radius: 4px; padding: 0.15rem 0.5rem;
       background: #f8f9fa; font-size: 0.9em; text-decoration: none; color: inherit; }
.badge { display: inline-block; padding: 0.1rem 0.45rem; border-radius: 4px; background: #e9ecef; font-size: 0.85em; }
.fas { font-style: normal; } .fa-check-circle::before { content: "\\2714"; color: #198754; }
.fa-times-circle::before, .fa-times::before { content: "\\2716"; color: #dc3545; }
.fa-question-circle::before { content: "?"; }
.cooltip .top { display: none; } .cooltip:hover .top { display: block; position: absolute; background: #fff;
    border: 1px solid #adb5bd; padding: 0.4rem; white-space: pre; z-index: 3; }
code, pre { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 0.9em; }
"""


def make_offline(docs_dir: Path, *, title: str, success: bool, statistics: dict, failures: list[dict]) -> Path:
    """Rewrite the site in ``docs_dir`` to need nothing from the internet; returns its new index page.

    ``failures``: one mapping per failed expectation (``ExpectationFailure`` as a dict: ``table`` is the
    check, ``description``, ``examples``).
    """
    docs_dir = Path(docs_dir)
    stylesheet = docs_dir / OFFLINE_STYLESHEET
    stylesheet.parent.mkdir(parents=True, exist_ok=True)
    stylesheet.write_text(_CSS)
    for page in docs_dir.rglob("*.html"):
        link = os.path.relpath(stylesheet, page.parent).replace(os.sep, "/")
        text = _REMOTE_LINK.sub("", _REMOTE_SCRIPT.sub("", page.read_text()))
        text = text.replace("</head>", f'<link rel="stylesheet" href="{link}">\n</head>', 1)
        page.write_text(text)
    index = docs_dir / "index.html"
    index.write_text(_index_page(docs_dir, title=title, success=success, statistics=statistics, failures=failures))
    return index


def _index_page(docs_dir: Path, *, title: str, success: bool, statistics: dict, failures: list[dict]) -> str:
    rows = []
    for suite_page in sorted((docs_dir / "expectations").glob("*.html")):
        check = suite_page.stem
        results = sorted((docs_dir / "validations" / check).rglob("*.html"))
        failed = sum(1 for failure in failures if failure.get("table") == check)
        status = ('<i class="fas fa-times-circle"></i> failed' if failed
                  else '<i class="fas fa-check-circle"></i> passed')
        result_link = f'<a href="{_relative(results[-1], docs_dir)}">results</a>' if results else "no results"
        rows.append(
            f"<tr><td>{html.escape(check)}</td><td>{status}</td><td>{failed}</td>"
            f'<td>{result_link} · <a href="{_relative(suite_page, docs_dir)}">expectations</a></td></tr>'
        )
    failure_items = "".join(
        f"<li><b>{html.escape(str(failure.get('table', '')))}</b>: {html.escape(str(failure.get('description', '')))}"
        f"{_examples(failure)}</li>"
        for failure in failures
    )
    facts = "".join(
        f"<tr><th>{html.escape(str(name))}</th><td>{html.escape(str(value))}</td></tr>"
        for name, value in statistics.items()
    )
    verdict = "passed" if success else "FAILED"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}: data validation {verdict}</title>
<link rel="stylesheet" href="{OFFLINE_STYLESHEET}">
</head><body><div class="fourds-report">
<h1>{html.escape(title)}</h1>
<p class="alert {'fourds-passed' if success else 'fourds-failed'}">Data validation <b>{verdict}</b>
(Great Expectations; this page and the pages it links need no internet connection).</p>
<h2>Checks</h2>
<table><tr><th>check</th><th>outcome</th><th>failed expectations</th><th>pages</th></tr>
{''.join(rows)}</table>
{'<h2>Failures</h2><ul>' + failure_items + '</ul>' if failures else ''}
<h2>Statistics</h2>
<table>{facts}</table>
</div></body></html>
"""


def _examples(failure: dict) -> str:
    examples = failure.get("examples") or []
    if not examples:
        return ""
    return ": " + ", ".join(f"<code>{html.escape(str(example))}</code>" for example in examples)


def _relative(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()

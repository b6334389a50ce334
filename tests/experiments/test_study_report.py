"""The study report from hand-made run records: tables, failures, and the templated HTML."""

from __future__ import annotations

import csv
import html
import json
import re
from pathlib import Path

import pytest

from landscape.experiments import (
    StudyConfig,
    StudyResult,
    aggregate,
    failure_groups,
    format_mean_std,
    markdown_table,
    plan_runs,
    write_study_report,
)
from tests.experiments._records import fake_record

_EVIL_ERROR = '<img src=x onerror=alert(1)> & "quoted"'
_EVIL_NOTE = 'reproduces "Table 2" & <b>fig. 3</b>, it\'s'


def _result(tmp_path: Path, description: str | None = None) -> tuple[StudyResult, StudyConfig]:
    study = StudyConfig(
        name="rep",
        data="d",
        description=description,
        runs=[{"name": "a", "note": _EVIL_NOTE}],
        grid={"optim.lr": [0.1, 0.01, 0.5]},
        seeds=[0, 1],
    )
    plans = plan_runs(study, tmp_path, tmp_path / "d")
    accs = {"a-0.1": (0.80, 0.90), "a-0.01": (0.60, 0.62), "a-0.5": (None, None)}
    records = [fake_record(p, accs[p.setting][p.seed], error=_EVIL_ERROR) for p in plans]
    rows, varied = aggregate(records, plans)
    counts = {"runs": len(records), "ok": 4, "failed": 2, "skipped": 0}
    result = StudyResult(
        name=study.name,
        out=tmp_path / "out",
        size="full",
        data=tmp_path / "d",
        records=records,
        rows=rows,
        varied=varied,
        counts=counts,
    )
    return result, study


def test_format_mean_std() -> None:
    assert format_mean_std(0.8421, 0.0131) == "0.842 ± 0.013"
    assert format_mean_std(0.8421, None) == "0.842"
    assert format_mean_std(None, 0.1) == "—"
    assert format_mean_std(0.5, 0.25, digits=1) == "0.5 ± 0.2"


def test_markdown_table_has_a_line_per_setting_and_escapes_pipes(tmp_path: Path) -> None:
    result, _ = _result(tmp_path)
    result.rows[0].settings["backbone"] = "a|b"
    lines = markdown_table(result.rows, result.varied).splitlines()
    assert len(lines) == 2 + 3
    assert lines[0].startswith("| setting | backbone | optim.lr | seeds | accuracy |")
    assert "a\\|b" in lines[2] and "0.850 ± 0.071" in lines[2] and "★ best" in lines[2]
    assert "0/2 ok" in lines[4] and "failed" in lines[4]


def test_failure_groups_group_run_names_by_error(tmp_path: Path) -> None:
    result, _ = _result(tmp_path)
    records = [*result.records, {**result.records[-1], "error": None, "run_dir": "/x/other"}]
    groups = failure_groups(records)
    assert [len(names) for names, _ in groups] == [2, 1]
    assert groups[0][1] == _EVIL_ERROR and groups[1] == (["other"], "unknown error")
    assert all(name.startswith("a-0.5-s") for name in groups[0][0])


def test_report_html_is_escaped_sortable_and_offline(tmp_path: Path) -> None:
    description = "Compare <script>alert('x')</script> learning rates & more"
    result, study = _result(tmp_path, description)
    files = write_study_report(result, study)
    page = Path(files["results.html"]).read_text()
    # Text from the study file and from error messages is shown, never interpreted.
    for raw in (description, _EVIL_ERROR, _EVIL_NOTE, "<b>fig. 3</b>"):
        assert raw not in page
    shown = re.search(r"<h1>.*?</h1>\n<p>(.*?)</p>", page, re.S)
    assert shown is not None and html.unescape(shown.group(1)) == description
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    titles = re.findall(r'<td data-v="[^"]*" title="([^"]*)">', page)
    assert [html.unescape(t) for t in titles] == [_EVIL_NOTE] * 3
    # One row per setting, classes from the flags, numbers sortable by their raw value.
    body = page.split("<tbody>")[1].split("</tbody>")[0]
    assert re.findall(r'<tr class="([^"]*)">', body) == ["best", "", "failed"]
    assert '<td data-v="0.61" class="num">0.610 ± 0.014</td>' in body
    assert '<td data-v="" class="num">—</td>' in body  # a failed setting sorts last
    header = page.split("<thead>")[1].split("</thead>")[0]
    assert body.count("<td ") == 3 * header.count("<th>") == 3 * 12
    assert 'table class="sortable"' in page and 'querySelectorAll("table.sortable th")' in page
    assert "th[data-dir=asc]::after" in page
    # Figures are embedded, and the page loads nothing from the network.
    assert page.count("data:image/png;base64,") == 2
    assert "accuracy_vs_latency.png" in files and "accuracy_vs_params.png" in files
    assert not re.search(r"(src|href)=['\"]https?://", page)
    assert "<h2>Failed runs</h2>" in page and "<code>a-0.5-s0-" in page
    assert "6 runs (4 ok, 2 failed,\n0 reused" in page


def test_report_without_successful_runs_says_so(tmp_path: Path) -> None:
    result, study = _result(tmp_path)
    keep = [r for r in result.rows if r.status == "failed"]
    failed = StudyResult(
        **{**result.__dict__, "rows": keep, "records": result.records[-2:], "files": {}}
    )
    files = write_study_report(failed, study)
    page = Path(files["results.html"]).read_text()
    assert "no figure: no run succeeded" in page and "data:image/png" not in page
    assert set(files) == {"results.csv", "results.md", "results.html", "results.json"}


def test_report_tables_agree(tmp_path: Path) -> None:
    result, study = _result(tmp_path)
    files = write_study_report(result, study)
    with open(files["results.csv"]) as fh:
        rows = list(csv.DictReader(fh))
    assert [r["setting"] for r in rows] == ["a-0.1", "a-0.01", "a-0.5"]
    assert [r["status"] for r in rows] == ["ok", "ok", "failed"]
    assert float(rows[0]["accuracy_mean"]) == pytest.approx(0.85) and rows[0]["best"] == "True"
    payload = json.loads(Path(files["results.json"]).read_text())
    assert [r["setting"] for r in payload["rows"]] == [r["setting"] for r in rows]
    md = Path(files["results.md"]).read_text()
    assert md.startswith("# Study `rep` (full)") and "## Failed runs" in md
    assert "![Accuracy vs inference latency (Pareto front marked)](accuracy_vs_latency.png)" in md

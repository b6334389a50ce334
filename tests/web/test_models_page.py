"""The models page through FastAPI's TestClient on a real index with a real retrained
candidate: the registry table, the candidate's comparison (figures, per-class F1, confusion
matrices, changed files as thumbnails), a running job, buttons by role, escaping and the empty
state; and the page's view helpers on odd comparisons."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from markupsafe import escape
from sqlalchemy import select

from landscape.api.settings import ServiceSettings
from landscape.index.accounts import add_user
from landscape.index.db import open_index, session_factory
from landscape.index.schema import File, Job, Model
from landscape.web._views import comparison_view, model_rows
from tests.lifecycle.conftest import Reviewed, reviewed  # noqa: F401

from .conftest import PASSWORD, login

HOSTILE_LOG = "[2/6] <script>alert('log')</script> training"
HOSTILE_PATH = '/gone/<img src=x onerror=alert("path")>.jpg'


@dataclass(frozen=True)
class Retrained:
    """A copy of the reviewed index with a retrained candidate registered, and its site."""

    url: str
    app: FastAPI
    base_id: str
    candidate_id: str
    comparison: dict[str, Any]


@pytest.fixture(scope="module")
def retrained(
    reviewed: Reviewed,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Retrained]:
    from landscape.lifecycle import RetrainOptions, retrain
    from landscape.web import create_site

    folder = tmp_path_factory.mktemp("models-page")
    url = reviewed.copy(folder)
    engine = open_index(url)
    result = retrain(
        engine,
        RetrainOptions(out=folder / "run", head_epochs=1, epochs=1, num_workers=0, progress=False),
    )
    log = folder / "job.log"
    log.write_text(f"loading\n{HOSTILE_LOG}\n")
    with session_factory(engine)() as session:
        add_user(session, "root", "admin", PASSWORD)
        add_user(session, "walt", "analyst", PASSWORD)
        add_user(session, "vic", "viewer", PASSWORD)
        # A running job on another machine (so it is trusted alive) with a hostile log line,
        # and a finished failed one whose error line is hostile too.
        session.add(
            Job(
                kind="reclassify",
                state="running",
                args={},
                user_name="root",
                host=f"not-{socket.gethostname()}",
                log_path=str(log),
            )
        )
        session.add(
            Job(
                kind="retrain",
                state="failed",
                args={},
                user_name="walt",
                host=socket.gethostname(),
                exit_code=1,
                error="<b>too few</b> reviewed images",
            )
        )
        session.add(
            Job(
                kind="reclassify",
                state="succeeded",
                args={},
                user_name="root",
                host=socket.gethostname(),
                exit_code=0,
                result={"model_id": result.model_id, "reclassified": 40, "skipped_roots": []},
            )
        )
        # A changed file that is no longer indexed, with a hostile path.
        row = session.get(Model, result.model_id)
        assert row is not None
        metrics = dict(row.metrics or {})
        comparison = dict(metrics["comparison"])
        comparison["changed"] = [
            *comparison["changed"],
            {
                "file_id": 999_999,
                "path": HOSTILE_PATH,
                "truth": "coast",
                "base": "desert",
                "candidate": "forest",
                "fixed": False,
            },
        ]
        row.metrics = {**metrics, "comparison": comparison}
        session.commit()
    engine.dispose()
    settings = ServiceSettings(
        db=url,
        home=folder / "home",
        roots=(reviewed.archive,),
        secret="models-page-tests-signing-key-0123",
    )
    app = create_site(settings)
    yield Retrained(url, app, result.base_model_id, result.model_id, comparison)
    app.state.landscape.engine.dispose()


@pytest.fixture
def client(retrained: Retrained) -> Iterator[TestClient]:
    with TestClient(retrained.app, base_url="http://testserver") as test_client:
        yield test_client


def _page(client: TestClient, name: str) -> str:
    assert login(client, name, PASSWORD, "/models").status_code == 303
    response = client.get("/models")
    assert response.status_code == 200
    assert "script-src 'self'" in response.headers["content-security-policy"]
    return response.text


def test_anonymous_is_sent_to_login(client: TestClient) -> None:
    response = client.get("/models", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=%2Fmodels"


def test_models_table_and_nav(client: TestClient, retrained: Retrained) -> None:
    text = _page(client, "root")
    assert '<a href="/models" aria-current="page">Models</a>' in text
    table = text.split('<table class="models-table">', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r'<tr class="[^"]*" data-model-id="([^"]+)">', table)
    assert rows == [retrained.base_id, retrained.candidate_id]  # the active one first
    active_row = table.split(f'data-model-id="{retrained.base_id}"', 1)[1].split("</tr>", 1)[0]
    assert '<span class="badge state-active">active</span>' in active_row
    assert "efficientnet_lite0" in active_row
    assert ">40<" in active_row  # files labelled by the active model
    assert "93.3 %" in active_row  # its test accuracy
    cand_row = table.split(f'data-model-id="{retrained.candidate_id}"', 1)[1].split("</tr>", 1)[0]
    assert f'href="#candidate-{retrained.candidate_id}"' in cand_row
    held_out = retrained.comparison["candidate"]["accuracy"]
    assert f"{100 * held_out:.1f} %" in cand_row
    assert f'from <span class="mono">{retrained.base_id}</span>' in cand_row
    # every page's nav has the link
    assert 'href="/models"' in client.get("/dashboard").text


def test_comparison_panel(client: TestClient, retrained: Retrained) -> None:
    text = _page(client, "root")
    panel = text.split(f'id="candidate-{retrained.candidate_id}"', 1)[1]
    panel = panel.split("</section>", 1)[0]
    comparison = retrained.comparison
    base, cand = comparison["base"], comparison["candidate"]
    assert f"same {comparison['held_out']} held-out reviewed files" in panel
    headline = panel.split('class="compact cmp-headline"', 1)[1].split("</table>", 1)[0]
    for key, name in (("accuracy", "Accuracy"), ("macro_f1", "Macro F1")):
        row = headline.split(f'<th scope="row">{name}</th>', 1)[1].split("</tr>", 1)[0]
        cells = re.findall(r"<td[^>]*>([^<]*)</td>", row)
        assert cells[0] == f"{100 * base[key]:.1f} %"
        assert cells[1] == f"{100 * cand[key]:.1f} %"
        diff = 100 * (cand[key] - base[key])
        assert cells[2] == (
            f"{diff:+.1f} pts".replace("-", "−") if abs(diff) >= 0.05 else "±0.0 pts"
        )
    # per-class F1: two bars per class
    assert panel.count('class="f1-row"') == len(comparison["classes"])
    for name in comparison["classes"]:
        assert (
            f'aria-label="{name} base F1 {round(100 * base["per_class_f1"][name], 1)} percent"'
            in panel
        )
        assert (
            f'aria-label="{name} candidate F1 {round(100 * cand["per_class_f1"][name], 1)} percent"'
            in panel
        )
    # both confusion matrices, with the true counts
    assert panel.count('<table class="compact confusion">') == 2
    for side, matrix in (
        ("Base", base["confusion_matrix"]),
        ("Candidate", cand["confusion_matrix"]),
    ):
        table = panel.split(f"<caption>{side} ", 1)[1].split("</table>", 1)[0]
        cells = [int(v) for v in re.findall(r'<td class="num[^"]*">(\d+)</td>', table)]
        assert cells == [v for row in matrix for v in row]
    # changed files: thumbnails linking to the detail page, with caption and mark
    real = [c for c in comparison["changed"] if c["file_id"] != 999_999]
    for change in real:
        fid = change["file_id"]
        assert f'href="/files/{fid}"' in panel
        assert f'src="/api/v1/files/{fid}/thumbnail"' in panel
        caption = (
            f'{change["truth"]}</span> · <span class="nowrap">{change["base"]} → '
            f"<strong>{change['candidate']}</strong>"
        )
        assert caption in panel
    marks = re.findall(r'<span class="mark mark-([a-z-]+)">', panel)
    assert len(marks) == len(comparison["changed"])
    assert marks.count("fixed") == sum(1 for c in real if c["fixed"])
    # the file that is gone: no link and no thumbnail
    assert 'href="/files/999999"' not in panel
    assert "/api/v1/files/999999/thumbnail" not in panel
    # actions
    data = panel.split('<table class="compact data-table">', 1)[1].split("</table>", 1)[0]
    held = comparison["counts"]["held_out"]
    assert f'Held out (scored, never trained on)</th><td class="num">{held}</td>' in data
    assert 'class="promote-form"' in panel
    assert 'name="reclassify" type="checkbox" checked' in panel
    assert "Promote</button>" in panel and "Discard</button>" in panel
    thumbnail = client.get(f"/api/v1/files/{real[0]['file_id']}/thumbnail") if real else None
    if thumbnail is not None:
        assert thumbnail.status_code == 200


def test_running_and_failed_jobs(client: TestClient) -> None:
    text = _page(client, "root")
    jobs = text.split('<section id="jobs"', 1)[1].split("</section>", 1)[0]
    assert " hidden>" not in jobs.split("\n", 1)[0]
    card = re.search(
        r'<article class="job job-running" data-job-id="\d+" data-kind="reclassify" '
        r'data-state="running"',
        jobs,
    )
    assert card is not None
    assert "Step 2/6: &lt;script&gt;" in jobs
    assert '<progress class="job-bar" max="6" value="2"' in jobs
    assert "&lt;script&gt;alert(&#39;log&#39;)&lt;/script&gt;" in jobs  # the log tail in <pre>
    history = text.split('id="history-title"', 1)[1]
    assert '<span class="error-text">&lt;b&gt;too few&lt;/b&gt; reviewed images</span>' in history
    assert "<b>too few</b>" not in text
    assert re.search(r'40 files labelled by <span class="mono">[\w.-]+</span>', history)
    # the job template for a new job is there for the script
    assert '<template id="job-template">' in text


def test_buttons_by_role(client: TestClient, retrained: Retrained) -> None:
    admin = _page(client, "root")
    assert 'id="retrain-form"' in admin and 'id="rollback-button"' in admin
    assert admin.count('class="promote-form"') == 1
    client.cookies.clear()
    analyst = _page(client, "walt")
    assert 'id="retrain-form"' in analyst
    assert 'id="rollback-button"' not in analyst
    assert "promote-form" not in analyst and "Discard</button>" not in analyst
    assert f'id="candidate-{retrained.candidate_id}"' in analyst  # the comparison is shown
    client.cookies.clear()
    viewer = _page(client, "vic")
    assert 'id="retrain-form"' not in viewer and ">Retrain</button>" not in viewer
    assert "promote-form" not in viewer and 'id="rollback-button"' not in viewer
    assert f'id="candidate-{retrained.candidate_id}"' in viewer
    # and the API agrees: a viewer may not retrain, an analyst may not promote
    csrf = re.search(r'<meta name="csrf-token" content="([^"]*)">', viewer)
    assert csrf is not None
    refused = client.post("/api/v1/retrain", json={}, headers={"X-CSRF-Token": csrf.group(1)})
    assert refused.status_code == 403


def test_everything_is_escaped(client: TestClient) -> None:
    text = _page(client, "root")
    assert "<script>alert" not in text
    assert "<img src=x onerror" not in text
    assert str(escape(Path(HOSTILE_PATH).name)) in text
    assert f'title="{escape(HOSTILE_PATH)} (no longer indexed)"' in text


def test_empty_state(tmp_path: Path) -> None:
    from landscape.web import create_site

    url = f"sqlite:///{tmp_path / 'empty.db'}"
    engine = open_index(url)
    with session_factory(engine)() as session:
        add_user(session, "root", "admin", PASSWORD)
        session.commit()
    engine.dispose()
    app = create_site(ServiceSettings(db=url, home=tmp_path / "home", secret="x" * 32))
    try:
        with TestClient(app, base_url="http://testserver") as client:
            text = _page(client, "root")
        assert "<h2>No models yet</h2>" in text
        assert "models-table" not in text and "Recent jobs" not in text
        assert re.search(r'id="retrain-button"\s+disabled', text)
    finally:
        app.state.landscape.engine.dispose()


def test_changed_files_point_at_indexed_files(retrained: Retrained) -> None:
    engine = open_index(retrained.url)
    with session_factory(engine)() as session:
        ids = set(session.scalars(select(File.id)))
    engine.dispose()
    changed = [c["file_id"] for c in retrained.comparison["changed"]]
    assert set(changed) - ids == {999_999}


# --- the view helpers on odd input -------------------------------------------------------------


def test_comparison_view_tolerates_missing_and_odd_values() -> None:
    view = comparison_view({})
    assert view["classes"] == [] and view["changed"] == [] and view["per_class"] == []
    assert [h["diff"] for h in view["headline"]] == ["–", "–"]
    odd = comparison_view(
        {
            "classes": ["a", "b"],
            "held_out": 4,
            "base": {
                "accuracy": 0.5,
                "macro_f1": "x",
                "per_class_f1": {"a": 1.0},
                "confusion_matrix": [[1]],
            },
            "candidate": {
                "accuracy": 0.75,
                "macro_f1": 0.4,
                "per_class_f1": "nope",
                "confusion_matrix": [[2, 0], [1, 1]],
            },
            "changed": [
                "junk",
                {"file_id": 1, "path": "x/a.jpg", "truth": "a", "base": "a", "candidate": "b"},
                {
                    "file_id": 2,
                    "path": "b.jpg",
                    "truth": "b",
                    "base": "a",
                    "candidate": "b",
                    "fixed": True,
                },
                {"file_id": 3, "path": "c.jpg", "truth": "a", "base": "b", "candidate": "c"},
            ],
            "counts": {"train": 10, "weird": "x", "flag": True},
        },
        {1: "image", 2: "other"},
    )
    acc, f1 = odd["headline"]
    assert (acc["diff"], acc["trend"]) == ("+25.0 pts", "up")
    assert (f1["diff"], f1["trend"]) == ("–", "same")
    assert odd["per_class"][0]["base"] == 1.0 and odd["per_class"][0]["candidate"] is None
    assert odd["base_confusion"] is None and odd["candidate_confusion"] == [[2, 0], [1, 1]]
    assert [(c["name"], c["outcome"], c["file_id"], c["thumb"]) for c in odd["changed"]] == [
        ("b.jpg", "fixed", 2, False),
        ("a.jpg", "broken", 1, True),
        ("c.jpg", "still wrong", None, False),
    ]
    assert (odd["fixed"], odd["broken"], odd["still_wrong"]) == (1, 1, 1)
    assert odd["counts"] == {"train": 10}


def test_model_rows() -> None:
    rows = model_rows(
        [
            {"model_id": "m1", "active": True, "metrics": {"test_acc": 0.9}, "predictions": 3,
             "created_at": "2026-01-02T03:04:05+00:00", "backbone": "b"},
            {"model_id": "m2", "active": False, "metrics": {"base_model_id": "m1", "comparison": {
                "base": {"accuracy": 0.5}, "candidate": {"accuracy": 0.6}}}},
            {"model_id": "m3", "active": False, "metrics": None},
        ]
    )  # fmt: skip
    assert [(r["model_id"], r["active"], r["candidate"]) for r in rows] == [
        ("m1", True, False),
        ("m2", False, True),
        ("m3", False, False),
    ]
    assert rows[0]["created"] == "2026-01-02 03:04" and rows[0]["test_acc"] == 0.9
    assert (rows[1]["held_out_acc"], rows[1]["base_held_out_acc"]) == (0.6, 0.5)
    assert rows[1]["base_model_id"] == "m1" and rows[2]["test_acc"] is None

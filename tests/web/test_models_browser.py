"""The models page in a real browser (Debian's Chromium driven by Playwright) against the
site served by uvicorn on a copy of the reviewed index: an admin retrains from the page (the
service runs ``landscape retrain`` as a process of its own), follows the job to success, reads
the candidate's comparison with its changed-file thumbnails, and promotes it (reclassifying
the index). The comparison is photographed at 1280×800 into ``$LANDSCAPE_SCREENSHOTS``
(``docs/screenshots`` to refresh the committed one), else a temporary folder."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from landscape.api.settings import ServiceSettings
from landscape.index.accounts import add_user
from landscape.index.db import open_index, session_factory
from tests.lifecycle.conftest import Reviewed, reviewed  # noqa: F401

from .conftest import PASSWORD, LiveServer, chromium, watched_tab

pytestmark = pytest.mark.timeout(480)


@pytest.fixture(scope="module")
def site(
    reviewed: Reviewed,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[FastAPI]:
    """The site on a private copy of the reviewed index, with an admin who has a password
    (``live_server`` from conftest serves this instead of the gallery's index)."""
    from landscape.web import create_site

    folder = tmp_path_factory.mktemp("models-browser")
    url = reviewed.copy(folder)
    engine = open_index(url)
    with session_factory(engine)() as session:
        add_user(session, "root", "admin", PASSWORD)
        session.commit()
    engine.dispose()
    app = create_site(
        ServiceSettings(
            db=url,
            home=folder / "home",
            roots=(reviewed.archive,),
            secret="models-browser-signing-key-01234567",
        )
    )
    yield app
    app.state.landscape.engine.dispose()


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A fresh Chromium profile at 1280×800; CSP violations and script errors are collected."""
    with chromium(tmp_path_factory.mktemp("chromium-profile")) as context:
        yield watched_tab(context)


def _wait_for_job(page: Any, kind: str, timeout_ms: int) -> dict[str, Any]:
    """Wait until the page shows the ``kind`` job finished (or the page reloaded to a
    comparison, for a retrain); the job's card as text."""
    page.wait_for_function(
        """kind => {
            const card = document.querySelector(`.job[data-kind="${kind}"]`);
            if (card && card.dataset.state !== "running") { return true; }
            return kind === "retrain" && !card && !!document.querySelector("section.comparison");
        }""",
        arg=kind,
        timeout=timeout_ms,
        polling=500,
    )
    card = page.locator(f'.job[data-kind="{kind}"]')
    if not card.count():
        return {"state": "succeeded", "text": ""}
    return {"state": card.get_attribute("data-state"), "text": card.inner_text()}


def test_retrain_compare_and_promote(page: Any, live_server: LiveServer, shots: Path) -> None:
    base = live_server.url
    page.goto(base + "/models")
    assert page.url.startswith(base + "/login?next=")
    page.fill("#name", "root")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(base + "/models")
    rows = page.locator(".models-table tbody tr")
    assert rows.count() == 1
    before = rows.first.get_attribute("data-model-id")
    assert rows.first.locator(".state-active").count() == 1
    assert page.locator("section.comparison").count() == 0

    # Retrain with the smallest schedule; the job card appears and follows the job.
    page.fill("#rt-head", "1")
    page.fill("#rt-epochs", "1")
    page.click("#retrain-button")
    card = page.locator('.job[data-kind="retrain"]')
    card.wait_for()
    assert page.locator("#retrain-button").is_disabled()
    assert card.locator("progress.job-bar").count() == 1
    card.locator(".job-step").filter(has_text="Step").wait_for(timeout=60_000)
    assert "/" in card.locator(".job-step").inner_text()
    page.screenshot(path=str(shots / "models-retraining.png"))
    outcome = _wait_for_job(page, "retrain", 180_000)
    assert outcome["state"] == "succeeded", outcome["text"]

    # The page reloads to the candidate's comparison.
    panel = page.locator("section.comparison")
    panel.wait_for(timeout=30_000)
    page.wait_for_load_state("networkidle")
    candidate = panel.get_attribute("data-model-id")
    assert candidate and candidate != before
    assert page.url.endswith(f"/models#candidate-{candidate}")
    assert f"Candidate {candidate} registered" in page.inner_text("#models-status")
    assert panel.locator(".cmp-headline tbody tr").count() == 2
    assert panel.locator(".f1-row").count() == 5
    assert panel.locator("table.confusion").count() == 2
    models = page.request.get(base + "/api/v1/models").json()["items"]
    changed = next(m for m in models if m["model_id"] == candidate)["metrics"]["comparison"][
        "changed"
    ]
    tiles = panel.locator(".changed-files .tile")
    assert tiles.count() == len(changed)
    for i, change in enumerate(changed):
        tile = panel.locator(
            ".changed-files .tile", has=page.locator(f'a[href="/files/{change["file_id"]}"]')
        )
        assert tile.count() == 1, i
        caption = tile.locator(".caption").inner_text()
        assert caption == f"{change['truth']} · {change['base']} → {change['candidate']}"
        loaded = tile.locator("img.thumb").evaluate("img => img.complete && img.naturalWidth > 0")
        assert loaded, f"the thumbnail of file {change['file_id']} did not load"
    page.evaluate("window.scrollTo(0, 0)")
    box = panel.bounding_box()
    assert box is not None
    clip = {"x": 0, "y": box["y"] - 12, "width": 1280, "height": box["height"] + 24}
    page.screenshot(path=str(shots / "models.png"), full_page=True, clip=clip)

    # Phone width: nothing scrolls sideways.
    page.set_viewport_size({"width": 390, "height": 844})
    try:
        width = page.evaluate("document.documentElement.scrollWidth")
        wide = page.evaluate(
            """() => [...document.querySelectorAll("main *")]
                .filter(e => e.getBoundingClientRect().right > 391 && !e.closest(".chart-scroll"))
                .slice(0, 5).map(e => e.tagName + "." + e.className)"""
        )
        assert width <= 390, f"the models page scrolls sideways at phone width ({width} px): {wide}"
        panel.scroll_into_view_if_needed()
        page.screenshot(path=str(shots / "models-phone.png"))
    finally:
        page.set_viewport_size({"width": 1280, "height": 800})

    # Promote (reclassifying the index): the page reloads with the candidate active.
    assert panel.locator("input[name=reclassify]").is_checked()
    panel.locator(".promote-button").click()
    active = page.locator(f'.models-table tr.is-active[data-model-id="{candidate}"]')
    active.wait_for(timeout=30_000)
    assert active.locator(".state-active").inner_text() == "active"
    assert "is now the active model" in page.inner_text("#models-status")
    assert page.locator("section.comparison").count() == 0  # no candidate left
    assert page.locator(".models-table tbody tr").count() == 2
    # The reclassify job: followed on the page while it runs, else already in the history.
    deadline = time.monotonic() + 180
    while True:
        jobs = page.request.get(base + "/api/v1/jobs").json()["items"]
        job = next(j for j in jobs if j["kind"] == "reclassify")
        if job["state"] != "running" or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert job["state"] == "succeeded", job
    page.reload()
    labelled = page.locator(f'tr[data-model-id="{candidate}"] td.num').first.inner_text()
    assert int(labelled) > 0
    assert page.problems == []

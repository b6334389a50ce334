"""The GUI in a real browser: Debian's Chromium driven by Playwright against the site served by
uvicorn. Journeys: log in, filter, open a file, correct its label, upload, walk the review
queue with the keyboard (and undo), play a video and jump to a segment. Each page is
photographed at 1280×800 (the gallery also at phone width) into ``$LANDSCAPE_SCREENSHOTS``
(``docs/screenshots`` to refresh the committed ones), else a temporary folder."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import PASSWORD, LiveServer, WebCopy, chromium, watched_tab

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A Chromium context with a fresh profile, 1280×800."""
    with chromium(tmp_path_factory.mktemp("chromium-profile")) as context:
        yield context


@pytest.fixture(scope="module")
def page(browser: Any, live_server: LiveServer) -> Iterator[Any]:
    """One tab that logs in first (the journeys run in order in it); CSP violations fail."""
    tab = watched_tab(browser)
    yield tab
    tab.close()


def test_log_in_and_filter_by_label(page: Any, live_server: LiveServer, shots: Path) -> None:
    base = live_server.url
    page.goto(base + "/dashboard")
    assert page.url.startswith(base + "/login?next=")
    page.screenshot(path=str(shots / "login.png"))
    page.fill("#name", "ana")
    page.fill("#password", "not the password")
    page.click("button[type=submit]")
    assert "Wrong name or password." in page.inner_text("[role=alert]")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(base + "/dashboard")
    page.click("nav >> text=Gallery")
    page.wait_for_url(base + "/")
    page.wait_for_load_state("networkidle")
    assert page.locator(".tile").count() >= 10
    page.screenshot(path=str(shots / "gallery.png"))
    page.select_option("#f-label", "coast")
    page.click("#filter-form button[type=submit]")
    page.wait_for_url(re.compile(r".*label=coast.*"))
    assert page.url == base + "/?label=coast"  # empty fields and defaults left out: shareable
    badges = page.locator(".tile .badge").all_inner_texts()
    assert badges
    assert set(badges) == {"coast"}
    assert page.problems == []


def test_open_detail_and_correct_the_label(page: Any, live_server: LiveServer, shots: Path) -> None:
    base = live_server.url
    page.goto(base + "/?label=coast&media=image")
    page.locator(".tile-link").first.click()
    page.wait_for_url(re.compile(r".*/files/\d+$"))
    file_id = int(page.url.rsplit("/", 1)[1])
    assert page.locator(".bars .bar-row").count() == 5
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(shots / "detail.png"))
    page.select_option("#c-label", "glacier")
    page.fill("#c-note", "ice, not sea <b>really</b>")
    page.click(".correct-form button[type=submit]")
    page.wait_for_url(re.compile(rf".*/files/{file_id}#corrections$"))
    history = page.locator(".history li").first.inner_text()
    assert "glacier" in history
    assert "ice, not sea <b>really</b>" in history  # shown as text
    assert "reviewed as glacier" in page.inner_text(".headline-label")
    listed = page.request.get(base + "/api/v1/corrections?label=glacier").json()["items"]
    assert listed[0]["file_id"] == file_id
    assert listed[0]["user"] == "ana"
    assert page.problems == []


def test_upload_shows_the_prediction(
    page: Any, live_server: LiveServer, web_copy: WebCopy, shots: Path, tmp_path: Path
) -> None:
    base = live_server.url
    photo = tmp_path / "new forest photo.jpg"
    shutil.copy(next(web_copy.index.root.rglob("forest_*.jpg")), photo)
    junk = tmp_path / "notes.jpg"
    junk.write_text("not a picture\n")
    page.goto(base + "/upload")
    page.set_input_files("#upload-file", [str(photo)])
    result = page.locator("#upload-results li").first
    result.locator(".badge").wait_for(timeout=120_000)
    assert result.locator(".badge").inner_text() == "forest"
    assert "new forest photo.jpg" in result.inner_text()
    href = result.locator("a").get_attribute("href")
    assert href is not None
    assert re.fullmatch(r"/files/\d+", href)
    page.set_input_files("#upload-file", [str(junk)])
    failed = page.locator("#upload-results li.failed")
    failed.wait_for(timeout=60_000)
    assert failed.locator(".err").inner_text()
    page.screenshot(path=str(shots / "upload.png"))
    page.goto(base + href)
    assert "new forest photo.jpg" in page.inner_text("h1")
    assert page.problems == []


def test_review_queue_with_the_keyboard(page: Any, live_server: LiveServer, shots: Path) -> None:
    base = live_server.url
    page.goto(base + "/review")
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(shots / "review.png"))
    items = page.locator(".q-item")
    ids = [int(items.nth(i).get_attribute("data-file-id")) for i in range(3)]
    model_labels = [items.nth(i).get_attribute("data-label") for i in range(3)]
    classes = ["coast", "desert", "forest", "glacier", "mountain"]
    focused = "document.activeElement.dataset.fileId"
    assert page.evaluate(focused) == str(ids[0])

    def decided(index: int) -> None:
        page.locator(".q-item").nth(index).locator(".decision").filter(
            has_text=re.compile("accepted|relabelled")
        ).wait_for()

    page.keyboard.press("2")  # desert for the first
    decided(0)
    assert page.evaluate(focused) == str(ids[1])
    page.keyboard.press("Enter")  # accept the model's label for the second
    decided(1)
    assert page.evaluate(focused) == str(ids[2])
    page.keyboard.press("ArrowUp")
    assert page.evaluate(focused) == str(ids[1])
    page.keyboard.press("ArrowDown")
    page.keyboard.press("5")  # mountain for the third
    decided(2)
    page.keyboard.press("u")  # take the third back
    page.wait_for_function(
        "() => document.getElementById('review-status').textContent.startsWith('Undid')"
    )
    assert page.evaluate(focused) == str(ids[2])
    assert page.locator(".q-item").nth(2).locator(".decision").inner_text() == ""

    def corrections(file_id: int) -> list[dict[str, Any]]:
        detail = page.request.get(f"{base}/api/v1/files/{file_id}").json()
        found: list[dict[str, Any]] = detail["corrections"]
        return found

    first, second, third = (corrections(i) for i in ids)
    assert [c["label"] for c in first] == [classes[1]]
    assert [c["label"] for c in second] == [model_labels[1]]
    assert second[0]["confirmed"] is True
    assert third == []
    page.reload()
    assert str(ids[2]) in page.locator(".q-item").evaluate_all(
        "items => items.map(i => i.dataset.fileId)"
    )
    assert page.problems == []


def test_play_video_and_jump_to_a_segment(
    page: Any, live_server: LiveServer, web_copy: WebCopy, shots: Path
) -> None:
    base = live_server.url
    page.goto(f"{base}/files/{web_copy.file_id('survey-flight.mp4')}")
    page.wait_for_function("() => document.getElementById('player').readyState >= 1")
    segments = page.locator(".timeline .segment")
    assert segments.count() >= 3
    last = segments.nth(segments.count() - 1)
    start = float(last.get_attribute("data-start"))
    assert start > 0
    last.click()
    page.wait_for_function(f"() => document.getElementById('player').currentTime >= {start}")
    page.evaluate("document.getElementById('player').play()")
    page.wait_for_function(f"() => document.getElementById('player').currentTime > {start + 0.2}")
    assert last.get_attribute("aria-pressed") == "true"
    page.evaluate("document.getElementById('player').pause()")
    page.screenshot(path=str(shots / "video-detail.png"))
    assert page.problems == []


def test_dashboard_and_phone_width(page: Any, live_server: LiveServer, shots: Path) -> None:
    base = live_server.url
    page.goto(base + "/dashboard")
    page.wait_for_load_state("networkidle")
    assert page.locator(".month-chart rect").count() > 0
    page.screenshot(path=str(shots / "dashboard.png"))
    page.set_viewport_size({"width": 390, "height": 844})
    try:
        page.goto(base + "/")
        page.wait_for_load_state("networkidle")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the gallery scrolls sideways at phone width ({width} px)"
        page.screenshot(path=str(shots / "gallery-phone.png"))
    finally:
        page.set_viewport_size({"width": 1280, "height": 800})
    assert page.problems == []

"""The GUI's pages through FastAPI's TestClient on a real index: login and its CSRF token,
redirects, the throttle, escaping of hostile names, the empty state and the error pages."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient

from landscape.api.security import SESSION_COOKIE

from .conftest import ATTR_NAME, EXIF_MAKE, PASSWORD, SCRIPT_NAME, WebCopy, csrf_of, login


def test_anonymous_pages_redirect_to_login_with_next(client: TestClient) -> None:
    for path in ("/", "/review", "/upload", "/dashboard", "/files/1", "/?label=coast&sort=oldest"):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 303, path
        location = response.headers["location"]
        assert location.startswith("/login?next=%2F"), location
    page = client.get("/?label=coast")
    assert page.url.path == "/login"
    assert 'name="next" value="/?label=coast"' in page.text


def test_login_sets_a_strict_httponly_session_cookie_and_follows_next(client: TestClient) -> None:
    response = login(client, next_url="/dashboard")
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard"
    cookie = next(
        c for c in response.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE)
    )
    assert "HttpOnly" in cookie
    assert "samesite=strict" in cookie.lower()
    assert "Max-Age=43200" in cookie  # session_hours 12
    assert "Secure" not in cookie
    assert client.get("/dashboard").status_code == 200


def test_login_cookie_is_secure_when_configured(web_copy: WebCopy) -> None:
    from landscape.web import create_site

    app = create_site(web_copy.settings(cookie_secure=True, session_hours=1))
    with TestClient(app, base_url="https://testserver") as client:
        response = login(client)
        cookie = next(
            c for c in response.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE)
        )
        assert "Secure" in cookie
        assert "Max-Age=3600" in cookie
    app.state.landscape.engine.dispose()


def test_login_refuses_a_foreign_next(client: TestClient) -> None:
    for bad in ("https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:x"):
        response = login(client, next_url=bad)
        assert response.status_code == 303
        assert response.headers["location"] == "/", bad
        client.cookies.clear()


def test_login_without_its_csrf_token_is_refused(client: TestClient) -> None:
    client.get("/login")
    response = client.post(
        "/login",
        data={"name": "ana", "password": PASSWORD, "csrf": "forged", "next": "/"},
        follow_redirects=False,
    )
    assert response.status_code == 403
    assert SESSION_COOKIE not in response.headers.get("set-cookie", "")
    # a fresh client (no pre-login cookie) with a token copied from another browser
    page = client.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert token is not None
    client.cookies.clear()
    response = client.post(
        "/login",
        data={"name": "ana", "password": PASSWORD, "csrf": token.group(1)},
        follow_redirects=False,
    )
    assert response.status_code == 403


def test_wrong_password_then_throttle_429(web_copy: WebCopy) -> None:
    from landscape.web import create_site

    app = create_site(web_copy.settings(login_attempts=2, login_window_s=60))
    with TestClient(app) as client:
        first = login(client, password="wrong password")
        assert first.status_code == 401
        assert "Wrong name or password." in first.text
        assert login(client, password="wrong again").status_code == 401
        throttled = login(client)  # even the right password waits
        assert throttled.status_code == 429
        assert int(throttled.headers["retry-after"]) > 0
        assert "Too many failed logins" in throttled.text
        assert SESSION_COOKIE not in throttled.headers.get("set-cookie", "")
        # another user from the same address is not held back
        assert login(client, name="walt").status_code == 303
    app.state.landscape.engine.dispose()


def test_logout_needs_the_csrf_token(ana: TestClient) -> None:
    page = ana.get("/")
    refused = ana.post("/logout", data={"csrf": "nope"}, follow_redirects=False)
    assert refused.status_code == 403
    assert "CSRF" in refused.text
    assert "<html" in refused.text  # the error page, not JSON
    done = ana.post("/logout", data={"csrf": csrf_of(page.text)}, follow_redirects=False)
    assert done.status_code == 303
    assert done.headers["location"] == "/login"
    ana.cookies.delete(SESSION_COOKIE)
    assert ana.get("/", follow_redirects=False).status_code == 303


def test_bearer_token_opens_pages(client: TestClient, web_copy: WebCopy) -> None:
    headers = {"Authorization": f"Bearer {web_copy.index.token}"}
    assert client.get("/dashboard", headers=headers).status_code == 200
    bad = client.get("/dashboard", headers={"Authorization": "Bearer lsk_nope"})
    assert bad.status_code == 401
    assert "unknown or expired" in bad.text


def test_gallery_lists_files_with_lazy_thumbnails_and_filters(ana: TestClient) -> None:
    page = ana.get("/")
    assert page.status_code == 200
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    assert 'loading="lazy"' in page.text
    assert re.search(r'src="/api/v1/files/\d+/thumbnail"', page.text)
    for name in ("label", "min_confidence", "max_confidence", "unknown", "media", "status"):
        assert f'name="{name}"' in page.text
    for name in ("taken_after", "taken_before", "camera", "place", "q", "bbox", "near", "sort"):
        assert f'name="{name}"' in page.text
    for label in ("coast", "desert", "forest", "glacier", "mountain"):
        assert f'<option value="{label}"' in page.text
    coast = ana.get("/?label=coast&media=image")
    assert 'value="coast" selected' in coast.text
    badges = re.findall(r'<span class="badge lab-\d+">(\w+)</span>', coast.text)
    assert badges
    assert set(badges) == {"coast"}


def test_gallery_pages_with_the_cursor(ana: TestClient) -> None:
    first = ana.get("/?limit=3&sort=oldest")
    next_link = re.search(r'href="(/\?[^"]*cursor=[^"]+)" rel="next"', first.text)
    assert next_link is not None
    url = next_link.group(1).replace("&amp;", "&")
    assert "limit=3" in url
    assert "sort=oldest" in url
    second = ana.get(url)
    assert second.status_code == 200
    ids = lambda html: re.findall(r'href="/files/(\d+)" class="tile-link"', html)  # noqa: E731
    assert len(ids(first.text)) == 3
    assert not set(ids(first.text)) & set(ids(second.text))
    assert "First page" in second.text


def test_gallery_bad_filter_is_a_message_not_a_crash(ana: TestClient) -> None:
    bad = ana.get("/?bbox=1,2&min_confidence=")
    assert bad.status_code == 400
    assert "cannot read the bounding box" in bad.text
    assert "Traceback" not in bad.text
    assert ana.get("/?min_confidence=7").status_code == 400
    assert ana.get("/?taken_after=yesterday").status_code == 400


def test_names_and_exif_render_escaped(ana: TestClient, web_copy: WebCopy) -> None:
    gallery = ana.get("/?limit=200")
    assert "<script>alert(1)</script>" not in gallery.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in gallery.text
    assert '"onmouseover="' not in gallery.text
    assert "&#34;onmouseover=&#34;alert(2)&#34;.jpg" in gallery.text
    script_page = ana.get(f"/files/{web_copy.file_id(SCRIPT_NAME)}")
    assert "<script>alert(1)</script>" not in script_page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in script_page.text
    attr_page = ana.get(f"/files/{web_copy.file_id(ATTR_NAME)}")
    assert '"onmouseover="' not in attr_page.text
    exif_page = ana.get(f"/files/{web_copy.file_id('exif-payload.jpg')}")
    assert EXIF_MAKE not in exif_page.text
    assert "&lt;img src=x onerror=alert(3)&gt;" in exif_page.text
    assert "<b>bold</b>" not in exif_page.text
    # the only scripts on any page are the static files
    for html in (gallery.text, script_page.text, exif_page.text):
        for tag in re.findall(r"<script[^>]*>", html):
            assert re.fullmatch(r'<script src="/static/\w+\.js\?v=[^"]+" defer>', tag), tag
        assert "style=" not in html


def test_detail_page_shows_prediction_metadata_and_form(ana: TestClient, web_copy: WebCopy) -> None:
    page = ana.get(f"/files/{web_copy.file_id('exif-payload.jpg')}")
    assert page.status_code == 200
    assert 'class="bars"' in page.text
    assert "Camera" in page.text
    assert "GPS" in page.text or "Dimensions" in page.text
    assert 'action="/files/' in page.text
    assert 'name="csrf"' in page.text
    assert "More like this" in page.text


def test_correction_form_needs_csrf_and_records(ana: TestClient, web_copy: WebCopy) -> None:
    file_id = web_copy.file_id("desert_00000.jpg")
    page = ana.get(f"/files/{file_id}")
    refused = ana.post(f"/files/{file_id}/correct", data={"label": "mountain"})
    assert refused.status_code == 403
    saved = ana.post(
        f"/files/{file_id}/correct",
        data={"label": "mountain", "note": "<i>dunes</i> on a ridge", "csrf": csrf_of(page.text)},
        follow_redirects=False,
    )
    assert saved.status_code == 303
    after = ana.get(f"/files/{file_id}")
    assert "reviewed as <strong>mountain</strong>" in after.text
    assert "&lt;i&gt;dunes&lt;/i&gt; on a ridge" in after.text
    api = ana.get("/api/v1/corrections", params={"label": "mountain"}).json()
    assert any(c["file_id"] == file_id for c in api["items"])
    bad = ana.post(f"/files/{file_id}/correct", data={"label": "ocean", "csrf": csrf_of(page.text)})
    assert bad.status_code == 400
    assert "not a class of the active model" in bad.text


def test_viewer_cannot_correct(client: TestClient, web_copy: WebCopy) -> None:
    login(client, name="vic")
    file_id = web_copy.file_id("coast_00000.jpg")
    page = client.get(f"/files/{file_id}")
    assert page.status_code == 200
    assert "Correct the label" not in page.text
    denied = client.post(
        f"/files/{file_id}/correct", data={"label": "coast", "csrf": csrf_of(page.text)}
    )
    assert denied.status_code == 403


def test_video_detail_has_player_and_timeline(ana: TestClient, web_copy: WebCopy) -> None:
    page = ana.get(f"/files/{web_copy.file_id('survey-flight.mp4')}")
    assert "<video" in page.text
    assert "/content" in page.text
    starts = re.findall(r'class="segment lab-\d+" data-start="([\d.]+)"', page.text)
    assert len(starts) >= 2
    assert float(starts[0]) == 0.0


def test_review_page_lists_the_queue_with_keys(ana: TestClient) -> None:
    page = ana.get("/review")
    assert page.status_code == 200
    assert 'data-file-id="' in page.text
    assert "<kbd>Enter</kbd>" in page.text
    assert 'data-classes=\'["coast"' in page.text


def test_review_undo_deletes_only_the_callers_newest_decision(
    site: FastAPI, ana: TestClient, web_copy: WebCopy
) -> None:
    file_id = web_copy.file_id("glacier_00000.jpg")
    csrf = csrf_of(ana.get("/review").text)
    headers = {"X-CSRF-Token": csrf}
    made = ana.post(
        f"/api/v1/files/{file_id}/corrections", json={"label": "forest"}, headers=headers
    )
    assert made.status_code == 201
    assert ana.post("/review/undo", json={"correction_id": made.json()["id"]}).status_code == 403
    undone = ana.post("/review/undo", json={"correction_id": made.json()["id"]}, headers=headers)
    assert undone.status_code == 200
    assert undone.json()["reviewed_label"] is None
    detail = ana.get(f"/api/v1/files/{file_id}").json()
    assert detail["corrections"] == []
    again = ana.post("/review/undo", json={"correction_id": made.json()["id"]}, headers=headers)
    assert again.status_code == 404
    audit = ana.get("/api/v1/audit").json()["items"]
    assert audit[0]["action"] == "label.undo"
    # another user's decision cannot be undone
    with TestClient(site) as walt:
        login(walt, name="walt")
        walt_csrf = csrf_of(walt.get("/review").text)
        theirs = walt.post(
            f"/api/v1/files/{file_id}/corrections",
            json={"label": "glacier"},
            headers={"X-CSRF-Token": walt_csrf},
        ).json()
    assert (
        ana.post("/review/undo", json={"correction_id": theirs["id"]}, headers=headers).status_code
        == 404
    )


def test_upload_and_dashboard_pages(ana: TestClient) -> None:
    upload = ana.get("/upload")
    assert 'id="dropzone"' in upload.text
    assert 'type="file"' in upload.text
    dash = ana.get("/dashboard")
    assert dash.status_code == 200
    assert "unknown rate" in dash.text
    assert "Test accuracy" in dash.text
    assert 'class="month-chart"' in dash.text


def test_dashboard_shows_per_class_f1_and_confusion(ana: TestClient, site: FastAPI) -> None:
    from sqlalchemy import select

    from landscape.index.schema import Model

    state = site.state.landscape
    with state.sessions() as session:
        model = session.scalar(select(Model).where(Model.active))
        assert model is not None
        classes = list(model.classes)
        old = model.metrics
        model.metrics = {
            **(old or {}),
            "evaluation": {
                "accuracy": 0.8,
                "per_class": {
                    c: {"precision": 0.5, "recall": 0.75, "f1": 0.6, "support": 4} for c in classes
                },
                "confusion_matrix": [[3 if i == j else 1 for j in classes] for i in classes],
            },
        }
        session.commit()
    try:
        page = ana.get("/dashboard").text
        assert "60.0 %" in page  # F1
        assert 'class="num diag">3</td>' in page
        assert "80.0 %" in page
    finally:
        with state.sessions() as session:
            row = session.scalar(select(Model).where(Model.active))
            assert row is not None
            row.metrics = old
            session.commit()


def test_error_pages_are_one_line_html(ana: TestClient) -> None:
    missing = ana.get("/files/999999")
    assert missing.status_code == 404
    assert '<p class="error-line">No file with id 999999.</p>' in missing.text
    unknown = ana.get("/no/such/page")
    assert unknown.status_code == 404
    assert "<html" in unknown.text
    typo = ana.get("/files/abc")
    assert typo.status_code == 400
    assert "Traceback" not in typo.text
    api = ana.get("/api/v1/files/999999")
    assert api.headers["content-type"].startswith("application/json")


def test_empty_index_shows_how_to_start(tmp_path: Path) -> None:
    from landscape.index.accounts import add_user
    from landscape.index.db import open_index, session_factory
    from landscape.web import create_site

    from .conftest import WebCopy, WebIndex

    url = f"sqlite:///{tmp_path / 'empty.db'}"
    engine = open_index(url)
    with session_factory(engine)() as session:
        add_user(session, "ana", "admin", PASSWORD)
        session.commit()
    engine.dispose()
    settings = WebCopy(url, tmp_path / "home", WebIndex(tmp_path, tmp_path, "", {})).settings()
    app = create_site(settings)
    with TestClient(app) as client:
        login(client)
        page = client.get("/")
        assert page.status_code == 200
        assert "Nothing indexed yet: run <code>landscape index /path</code>" in page.text
        assert client.get("/review").status_code == 200
        assert client.get("/dashboard").status_code == 200
    app.state.landscape.engine.dispose()


def test_landscape_serve_builds_the_site(web_copy: WebCopy) -> None:
    from landscape.cli._serve import build_site

    app = build_site(web_copy.settings())
    try:
        with TestClient(app) as client:
            assert client.get("/login").status_code == 200
            assert client.get("/static/site.css").status_code == 200
            assert client.get("/review", follow_redirects=False).status_code == 303
    finally:
        app.state.landscape.engine.dispose()

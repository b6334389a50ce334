"""The API's safety rails: authentication and scopes, paths confined to the roots, hostile
strings kept as data, SQL injection, hostile uploads, security headers, cookie sessions with
CSRF — on SQLite and on PostgreSQL."""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import func, select, update

from landscape.api.security import SESSION_COOKIE, sign_session
from landscape.index.schema import (
    ApiToken,
    AuditEntry,
    Correction,
    File,
    MediaMetadata,
    Model,
    Prediction,
    Root,
    User,
    utcnow,
)
from tests.api.conftest import Api
from tests.conftest import _photo_array, _png_claiming

API = "/api/v1"


def _jpeg(seed: int = 21, size: tuple[int, int] = (120, 90), quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(_photo_array(seed, size)).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def _counts(api: Api) -> dict[str, int]:
    with api.session() as session:
        return {
            table.__tablename__: int(session.scalar(select(func.count()).select_from(table)) or 0)
            for table in (
                File,
                Root,
                Prediction,
                MediaMetadata,
                Model,
                User,
                ApiToken,
                Correction,
                AuditEntry,
            )
        }


def _any_id(api: Api) -> int:
    return int(
        api.get(f"{API}/files", params={"media": "image", "limit": 1}).json()["items"][0]["id"]
    )


# -- authentication and scopes -------------------------------------------------------------


def _api_routes(api: Api) -> list[tuple[str, str]]:
    paths = api.get(f"{API}/openapi.json").json()["paths"]
    return [(method.upper(), path) for path, ops in paths.items() for method in ops]


def test_every_route_but_health_needs_a_token(api: Api) -> None:
    file_id = _any_id(api)
    routes = _api_routes(api)
    assert len(routes) >= 13
    seen = set()
    for method, path in routes:
        url = path.replace("{file_id}", str(file_id))
        response = api.client.request(method, url)
        seen.add(path)
        if path == f"{API}/health":
            assert response.status_code == 200
            continue
        assert response.status_code == 401, (method, path, response.text)
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["detail"]
    assert {f"{API}/files", f"{API}/uploads", f"{API}/audit", f"{API}/review"} <= seen


@pytest.mark.parametrize(
    "header",
    [
        "Bearer lsk_not-a-real-token",
        "Bearer nonsense",
        "Bearer " + "lsk_" + "a" * 400,
        "Basic dmlld2VyOnNlY3JldA==",
        "Bearer",
        "bearer   ",
        "Token lsk_x",
    ],
)
def test_a_bad_token_is_401(api: Api, header: str) -> None:
    response = api.client.get(f"{API}/files", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json()["detail"]


@pytest.mark.parametrize(
    ("user", "method", "path", "code"),
    [
        ("viewer", "GET", "/files", 200),
        ("viewer", "GET", "/stats", 200),
        ("viewer", "POST", "/files/{id}/corrections", 403),
        ("viewer", "POST", "/uploads", 403),
        ("viewer", "GET", "/audit", 403),
        ("analyst", "GET", "/audit", 403),
        ("analyst", "POST", "/files/{id}/corrections", 201),
        ("admin", "GET", "/audit", 200),
        ("admin", "POST", "/files/{id}/corrections", 201),
    ],
)
def test_roles_grant_their_scopes(api: Api, user: str, method: str, path: str, code: int) -> None:
    before = _counts(api)
    url = API + path.replace("{id}", str(_any_id(api)))
    kwargs: dict[str, Any] = {}
    if path.endswith("corrections"):
        kwargs["json"] = {"label": "coast"}
    elif path == "/uploads":
        kwargs["files"] = {"file": ("x.jpg", _jpeg(), "image/jpeg")}
    response = api.client.request(method, url, headers=api.headers(user), **kwargs)
    assert response.status_code == code, response.text
    if code == 403:
        assert "scope" in response.json()["detail"]
        assert _counts(api) == before
        assert not any(p.is_file() for p in api.settings.upload_root.rglob("*"))


def _issue(api: Api, name: str, **kwargs: Any) -> str:
    from landscape.index.accounts import issue_token

    with api.session() as session:
        token, _ = issue_token(session, name, **kwargs)
        session.commit()
    return token


def test_an_expired_token_is_401(api: Api) -> None:
    token = _issue(api, "analyst", expires=timedelta(hours=1))
    headers = {"Authorization": f"Bearer {token}"}
    assert api.client.get(f"{API}/files", headers=headers).status_code == 200
    with api.session() as session:
        session.execute(update(ApiToken).values(expires_at=utcnow() - timedelta(seconds=1)))
        session.commit()
    response = api.client.get(f"{API}/files", headers=headers)
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]


def test_a_token_is_limited_to_its_scope_and_its_users_role(api: Api) -> None:
    read_only = _issue(api, "admin", scope="read")
    headers = {"Authorization": f"Bearer {read_only}"}
    assert api.client.get(f"{API}/files", headers=headers).status_code == 200
    assert api.client.get(f"{API}/audit", headers=headers).status_code == 403
    url = f"{API}/files/{_any_id(api)}/corrections"
    assert api.client.post(url, headers=headers, json={"label": "coast"}).status_code == 403

    # A demoted analyst's write token reads only; a removed user's token is dead.
    with api.session() as session:
        session.execute(update(User).where(User.name == "analyst").values(role="viewer"))
        session.commit()
    assert api.post(url, json={"label": "coast"}).status_code == 403
    assert api.get(f"{API}/files", "analyst").status_code == 200
    from landscape.index.accounts import remove_user

    with api.session() as session:
        remove_user(session, "analyst")
        session.commit()
    assert api.get(f"{API}/files", "analyst").status_code == 401


# -- paths confined to the roots -----------------------------------------------------------


def _add_file(api: Api, root: Path, relative: str, content_hash: str = "ab" * 32) -> int:
    """A file row under ``root`` (recorded as an index root when new)."""
    with api.session() as session:
        root_row = session.scalar(select(Root).where(Root.path == str(root)))
        if root_row is None:
            root_row = Root(path=str(root))
            session.add(root_row)
            session.flush()
        row = File(
            root_id=root_row.id,
            relative_path=relative,
            size=100,
            mtime_ns=0,
            media_type="image",
            mime="image/jpeg",
            status="ok",
            content_hash=content_hash,
        )
        session.add(row)
        session.commit()
        return row.id


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A real JPEG outside every served root."""
    folder = tmp_path / "outside"
    folder.mkdir()
    secret = folder / "secret.jpg"
    secret.write_bytes(_jpeg(99))
    return secret


def _refused(api: Api, file_id: int, secret: Path) -> None:
    for part in ("content", "thumbnail"):
        response = api.get(f"{API}/files/{file_id}/{part}")
        assert response.status_code == 404, (part, response.status_code)
        assert response.content != secret.read_bytes()
        assert response.headers["content-type"] == "application/json"
        assert "outside" in response.json()["detail"] or "not on disk" in response.json()["detail"]
    thumbs = api.settings.thumbnail_dir
    assert not thumbs.exists() or not any(p.is_file() for p in thumbs.rglob("*"))


def test_dot_dot_and_absolute_paths_in_rows_are_refused(api: Api, outside: Path) -> None:
    relative = os.path.relpath(outside, api.root)
    assert relative.startswith("..")
    _refused(api, _add_file(api, api.root, relative), outside)
    _refused(api, _add_file(api, api.root, str(outside), "cd" * 32), outside)
    _refused(api, _add_file(api, api.root, "2025-01-flight/../../" + relative, "ef" * 32), outside)


@pytest.fixture
def linked_root(tmp_path: Path, outside: Path) -> Path:
    """A second root: a real photo, a link to it, and links out of the root (file, folder)."""
    root = tmp_path / "linked"
    root.mkdir()
    (root / "good.jpg").write_bytes(_jpeg(5))
    (root / "inner.jpg").symlink_to(root / "good.jpg")
    (root / "escape.jpg").symlink_to(outside)
    (root / "escape-dir").symlink_to(outside.parent, target_is_directory=True)
    (root / "dangling.jpg").symlink_to(tmp_path / "nowhere.jpg")
    return root


def test_symbolic_links_out_of_the_root_are_refused(
    make_api: Callable[..., Api], linked_root: Path, outside: Path
) -> None:
    api = make_api(roots=(linked_root,))
    good = _add_file(api, linked_root, "good.jpg", "11" * 32)
    response = api.get(f"{API}/files/{good}/content")
    assert (
        response.status_code == 200 and response.content == (linked_root / "good.jpg").read_bytes()
    )
    assert api.get(f"{API}/files/{good}/thumbnail").status_code == 200
    inner = _add_file(api, linked_root, "inner.jpg", "22" * 32)
    assert api.get(f"{API}/files/{inner}/content").status_code == 200
    shutil.rmtree(api.settings.thumbnail_dir)

    _refused(api, _add_file(api, linked_root, "escape.jpg", "33" * 32), outside)
    _refused(api, _add_file(api, linked_root, "escape-dir/secret.jpg", "44" * 32), outside)
    _refused(api, _add_file(api, linked_root, "dangling.jpg", "55" * 32), outside)
    # The archive is an index root but not a served one here.
    photo = api.get(f"{API}/files", params={"media": "image", "status": "ok"}).json()["items"][0]
    assert api.get(f"{API}/files/{photo['id']}/content").status_code == 404


def test_an_indexed_file_replaced_by_a_link_out_is_refused(
    make_api: Callable[..., Api], tmp_path: Path, outside: Path
) -> None:
    root = tmp_path / "share"
    root.mkdir()
    (root / "photo.jpg").write_bytes(_jpeg(6))
    api = make_api(roots=(root,))
    file_id = _add_file(api, root, "photo.jpg", "66" * 32)
    assert api.get(f"{API}/files/{file_id}/content").status_code == 200
    (root / "photo.jpg").unlink()
    (root / "photo.jpg").symlink_to(outside)
    _refused(api, file_id, outside)


@pytest.mark.parametrize(
    "path",
    [
        "/files/..%2F..%2F..%2Fetc%2Fpasswd/content",
        "/files/%2e%2e%2f%2e%2e%2fetc%2fpasswd/content",
        "/files/%252e%252e%252f%252e%252e%252fetc%252fpasswd/content",
        "/files/..%252F..%252Fetc%252Fpasswd/thumbnail",
        "/files/%2Fetc%2Fpasswd/content",
        "/files/1%2F..%2F..%2F..%2Fetc%2Fpasswd/content",
        "/files/..%5C..%5Cetc%5Cpasswd/content",
        "/files/1/../../../../etc/passwd",
        "/files/1/content/../../../../../etc/passwd",
    ],
)
def test_encoded_traversal_in_the_url_reaches_no_file(api: Api, path: str) -> None:
    response = api.get(API + path)
    assert response.status_code in (404, 422), (path, response.status_code)
    assert b"root:" not in response.content


# -- hostile strings are data --------------------------------------------------------------

HTML_NAME = "<img src=x onerror=alert('name')>.jpg"
HTML_CAMERA = "<script>alert('camera')</script>"
HTML_PLACE = '"><svg onload=alert(1)>'
HTML_EXIF = "</script><script>alert(`exif`)</script>"
HTML_NOTE = "<b onmouseover=alert('note')>look</b> & <i>see</i>"


def test_html_and_script_in_names_exif_and_notes_come_back_intact(api: Api) -> None:
    photo = api.get(f"{API}/files", params={"media": "image", "status": "ok", "camera": "LS-1"})
    file_id = photo.json()["items"][0]["id"]
    with api.session() as session:
        row = session.get(File, file_id)
        row.relative_path = f"2025-01-flight/{HTML_NAME}"
        media = session.get(MediaMetadata, file_id)
        media.camera_model = HTML_CAMERA
        media.place_city = HTML_PLACE
        media.exif = {**(media.exif or {}), "ImageDescription": HTML_EXIF}
        session.commit()
    made = api.post(
        f"{API}/files/{file_id}/corrections", json={"label": "coast", "note": HTML_NOTE}
    )
    assert made.status_code == 201 and made.json()["note"] == HTML_NOTE

    listed = api.get(f"{API}/files", params={"q": "<img src=x"})
    assert listed.headers["content-type"] == "application/json"
    (hit,) = listed.json()["items"]
    assert hit["id"] == file_id
    assert hit["path"].endswith("/" + HTML_NAME)
    assert HTML_CAMERA in hit["camera"] and hit["place"].startswith(HTML_PLACE)
    assert (
        api.get(f"{API}/files", params={"camera": HTML_CAMERA}).json()["items"][0]["id"] == file_id
    )
    assert api.get(f"{API}/files", params={"place": HTML_PLACE}).json()["items"][0]["id"] == file_id
    detail = api.get(f"{API}/files/{file_id}")
    assert detail.headers["content-type"] == "application/json"
    body = detail.json()
    assert body["name"] == HTML_NAME
    assert body["metadata"]["camera_model"] == HTML_CAMERA
    assert body["metadata"]["exif"]["ImageDescription"] == HTML_EXIF
    assert body["corrections"][0]["note"] == HTML_NOTE
    assert api.get(f"{API}/corrections").json()["items"][0]["note"] == HTML_NOTE
    review = api.get(f"{API}/review", params={"limit": 100}).json()["items"]
    assert file_id not in [i["file_id"] for i in review]


def test_an_uploads_html_name_is_kept_as_data(api: Api) -> None:
    response = api.post(f"{API}/uploads", files={"file": (HTML_NAME, _jpeg(), "image/jpeg")})
    assert response.status_code == 201, response.text
    assert response.json()["path"].endswith(HTML_NAME)
    detail = api.get(f"{API}/files/{response.json()['id']}").json()
    assert detail["name"].endswith(HTML_NAME)


# -- SQL injection -------------------------------------------------------------------------

INJECTIONS = [
    "' OR '1'='1",
    "' OR 1=1 --",
    "x'; DROP TABLE files; --",
    '"; DELETE FROM users; --',
    "coast' UNION SELECT name, password_hash FROM users --",
    "%",
    "_%_",
    "%' OR '%'='",
    "\\",
    "coast\x00",
    "')) OR 1=1; --",
    "1; SELECT pg_sleep(5)",
]


@pytest.mark.parametrize("param", ["label", "q", "camera", "place", "model"])
def test_sql_injection_in_filters_matches_nothing_and_changes_nothing(api: Api, param: str) -> None:
    before = _counts(api)
    for text in INJECTIONS:
        response = api.get(f"{API}/files", params={param: text})
        if "\x00" in text:  # PostgreSQL cannot compare it: refused before any query
            assert response.status_code == 400, response.text
            assert "NUL" in response.json()["detail"]
            continue
        assert response.status_code == 200, (param, text, response.text)
        items = response.json()["items"]
        if param == "model":
            # Which model's labels to show: an unknown one labels nothing, adds no row.
            assert len(items) == before["files"] and all(h["label"] is None for h in items)
        else:
            assert items == [], (param, text)
    for text in INJECTIONS[:6]:
        for path, name in ((f"{API}/review", "label"), (f"{API}/corrections", "user")):
            response = api.get(path, params={name: text})
            assert response.status_code == 200 and response.json()["items"] == []
    assert _counts(api) == before
    assert api.get(f"{API}/files", params={"limit": 200}).json()["items"]


def test_sql_injection_in_a_correction_is_stored_as_text(api: Api) -> None:
    before = _counts(api)
    file_id = _any_id(api)
    for text in INJECTIONS[:5]:
        response = api.post(f"{API}/files/{file_id}/corrections", json={"label": text})
        assert response.status_code == 400
        note = api.post(f"{API}/files/{file_id}/corrections", json={"label": "coast", "note": text})
        assert note.status_code == 201 and note.json()["note"] == text
    for body in ({"label": "coast", "note": "a\x00b"}, {"label": "coast\x00"}):
        response = api.post(f"{API}/files/{file_id}/corrections", json=body)
        assert response.status_code == 400, response.text
    for path, name in ((f"{API}/review", "label"), (f"{API}/corrections", "user")):
        assert api.get(path, params={name: "x\x00"}).status_code == 400
    after = _counts(api)
    assert after["corrections"] == before["corrections"] + 5
    assert {k: v for k, v in after.items() if k not in ("corrections", "audit_log")} == {
        k: v for k, v in before.items() if k not in ("corrections", "audit_log")
    }


def test_a_non_numeric_file_id_is_a_422(api: Api) -> None:
    for value in ("1 OR 1=1", "1;DROP TABLE files", "0x10", "1e3"):
        assert api.get(f"{API}/files/{value}").status_code == 422


# -- hostile uploads -----------------------------------------------------------------------


def _nothing_stored(api: Api, before: dict[str, int]) -> None:
    upload_root = api.settings.upload_root
    assert not upload_root.exists() or not any(p.is_file() for p in upload_root.rglob("*"))
    incoming = api.settings.data_dir / "incoming"
    assert not incoming.exists() or not any(incoming.iterdir())
    after = _counts(api)
    assert after["files"] == before["files"]
    assert after["predictions"] == before["predictions"]
    assert after["media_metadata"] == before["media_metadata"]
    with api.session() as session:
        assert not session.scalars(
            select(AuditEntry).where(AuditEntry.action == "file.upload")
        ).all()


@pytest.mark.parametrize(
    ("name", "payload", "code", "words"),
    [
        ("empty.jpg", b"", 400, "empty"),
        ("notes.jpg", b"this is not an image\n" * 20, 415, "not an image"),
        ("page.html", b"<!doctype html><script>alert(1)</script>", 415, "not an image"),
        ("bomb.png", _png_claiming(30000, 30000), 422, "not stored"),
        ("cut.jpg", _jpeg(3, (400, 300), 95)[:2000], 422, "not stored"),
    ],
)
def test_a_hostile_upload_is_refused_with_a_message_and_nothing_is_stored(
    api: Api, name: str, payload: bytes, code: int, words: str
) -> None:
    before = _counts(api)
    response = api.post(f"{API}/uploads", files={"file": (name, payload, "image/jpeg")})
    assert response.status_code == code, response.text
    detail = response.json()["detail"]
    assert words in detail and "\n" not in detail and "Traceback" not in detail
    _nothing_stored(api, before)


def test_an_oversized_upload_is_413_and_nothing_is_stored(make_api: Callable[..., Api]) -> None:
    api = make_api(max_upload_mb=0.01)
    big = _jpeg(4, (400, 300), 95)
    assert len(big) > 10_000
    before = _counts(api)
    response = api.post(f"{API}/uploads", files={"file": ("big.jpg", big, "image/jpeg")})
    assert response.status_code == 413, response.text
    assert "0.01 MB" in response.json()["detail"]
    _nothing_stored(api, before)
    small = api.post(
        f"{API}/uploads", files={"file": ("small.jpg", _jpeg(4, (32, 24)), "image/jpeg")}
    )
    assert small.status_code == 201, small.text


def test_an_upload_without_a_file_is_422(api: Api) -> None:
    before = _counts(api)
    assert api.post(f"{API}/uploads").status_code == 422
    assert api.post(f"{API}/uploads", data={"other": "x"}).status_code == 422
    _nothing_stored(api, before)


@pytest.mark.parametrize(
    "name",
    ["../../../evil.jpg", "/etc/cron.d/evil.jpg", "..\\..\\evil.jpg", "..", ".jpg", "a\x00b.jpg"],
)
def test_an_upload_name_cannot_leave_the_upload_root(api: Api, name: str, tmp_path: Path) -> None:
    response = api.post(f"{API}/uploads", files={"file": (name, _jpeg(8), "image/jpeg")})
    assert response.status_code == 201, response.text
    stored = Path(response.json()["path"]).resolve()
    root = api.settings.upload_root.resolve()
    assert root in stored.parents and stored.parent.parent == root
    assert stored.is_file() and stored.read_bytes() == _jpeg(8)
    assert not (tmp_path / "evil.jpg").exists()


# -- security headers ----------------------------------------------------------------------


def _check_headers(response: Any) -> None:
    csp = response.headers.get("content-security-policy", "")
    directives = {d.split()[0]: d.split()[1:] for d in csp.split(";") if d.strip()}
    assert directives.get("script-src") == ["'self'"], csp
    assert "'unsafe-inline'" not in directives["script-src"]
    assert directives.get("frame-ancestors") == ["'none'"], csp
    assert response.headers.get("x-content-type-options") == "nosniff"
    assert response.headers.get("referrer-policy") == "no-referrer"


def test_every_response_carries_the_security_headers(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    file_id = _any_id(api)
    video = api.get(f"{API}/files", params={"media": "video"}).json()["items"][0]["id"]
    responses = [
        api.client.get(f"{API}/health"),
        api.client.get(f"{API}/files"),
        api.get(f"{API}/files"),
        api.get(f"{API}/files/{file_id}"),
        api.get(f"{API}/files/{file_id}/thumbnail"),
        api.get(f"{API}/files/{file_id}/content"),
        api.client.get(
            f"{API}/files/{video}/content", headers={**api.headers("viewer"), "Range": "bytes=0-9"}
        ),
        api.get(f"{API}/files/999999"),
        api.get(f"{API}/files", params={"limit": 5000}),
        api.get(f"{API}/audit"),
        api.post(f"{API}/uploads", files={"file": ("e.jpg", b"", "image/jpeg")}),
        api.client.delete(f"{API}/files", headers=api.headers("viewer")),
        api.client.get("/no/such/page"),
        api.client.get(f"{API}/openapi.json"),
        api.get("/docs"),
        api.client.get("/docs-init.js"),
    ]
    statuses = {r.status_code for r in responses}
    assert {200, 201, 206, 401, 403, 404, 405, 422} - {201} <= statuses
    for response in responses:
        _check_headers(response)
    assert responses[-2].headers["content-type"].startswith("text/html")
    assert "<script>" not in responses[-2].text  # no inline script in the docs page

    # Even an unexpected failure answers with the headers (and no stack trace).
    from landscape.api.routes import admin

    def broken(session: Any) -> Any:
        raise RuntimeError("boom at /secret/place")

    monkeypatch.setattr(admin, "index_stats", broken)
    failed = api.get(f"{API}/stats")
    assert failed.status_code == 500
    assert "boom" not in failed.text and "Traceback" not in failed.text
    _check_headers(failed)


# -- cookie sessions and CSRF --------------------------------------------------------------


def _cookie(api: Api, name: str, lifetime: float = 3600) -> tuple[str, str]:
    state = api.app.state.landscape
    with api.session() as session:
        user_id = session.scalar(select(User.id).where(User.name == name))
    value, data = sign_session(state.key, int(user_id), lifetime)
    return value, data.csrf


def _with_cookie(value: str, **extra: str) -> dict[str, str]:
    return {"Cookie": f"{SESSION_COOKIE}={value}", **extra}


def test_a_session_cookie_reads_and_writes_only_with_its_csrf_token(api: Api) -> None:
    cookie, csrf = _cookie(api, "analyst")
    assert api.client.get(f"{API}/files", headers=_with_cookie(cookie)).status_code == 200
    url = f"{API}/files/{_any_id(api)}/corrections"
    before = _counts(api)
    for headers in (
        _with_cookie(cookie),
        _with_cookie(cookie, **{"X-CSRF-Token": "wrong"}),
        _with_cookie(cookie, **{"X-CSRF-Token": ""}),
        _with_cookie(cookie, **{"X-CSRF-Token": csrf + "x"}),
    ):
        response = api.client.post(url, headers=headers, json={"label": "coast"})
        assert response.status_code == 403, response.text
        assert "CSRF" in response.json()["detail"]
    # Another session's token does not fit this one.
    _, other_csrf = _cookie(api, "analyst")
    response = api.client.post(
        url, headers=_with_cookie(cookie, **{"X-CSRF-Token": other_csrf}), json={"label": "coast"}
    )
    assert response.status_code == 403
    assert _counts(api) == before
    ok = api.client.post(
        url, headers=_with_cookie(cookie, **{"X-CSRF-Token": csrf}), json={"label": "coast"}
    )
    assert ok.status_code == 201 and ok.json()["user"] == "analyst"


def test_a_cookie_upload_needs_the_csrf_form_field_or_header(api: Api) -> None:
    cookie, csrf = _cookie(api, "analyst")
    before = _counts(api)
    files = {"file": ("c.jpg", _jpeg(12), "image/jpeg")}
    refused = api.client.post(f"{API}/uploads", headers=_with_cookie(cookie), files=files)
    assert refused.status_code == 403
    wrong = api.client.post(
        f"{API}/uploads", headers=_with_cookie(cookie), files=files, data={"csrf": "nope"}
    )
    assert wrong.status_code == 403
    _nothing_stored(api, before)
    ok = api.client.post(
        f"{API}/uploads", headers=_with_cookie(cookie), files=files, data={"csrf": csrf}
    )
    assert ok.status_code == 201, ok.text


def test_a_viewer_session_cannot_write_even_with_its_csrf_token(api: Api) -> None:
    cookie, csrf = _cookie(api, "viewer")
    url = f"{API}/files/{_any_id(api)}/corrections"
    response = api.client.post(
        url, headers=_with_cookie(cookie, **{"X-CSRF-Token": csrf}), json={"label": "coast"}
    )
    assert response.status_code == 403
    admin_cookie, _ = _cookie(api, "admin")
    assert api.client.get(f"{API}/audit", headers=_with_cookie(cookie)).status_code == 403
    assert api.client.get(f"{API}/audit", headers=_with_cookie(admin_cookie)).status_code == 200


def test_forged_expired_and_orphan_cookies_are_401(api: Api) -> None:
    cookie, _ = _cookie(api, "viewer")
    payload, mac = cookie.split(".")
    forged_admin, _ = sign_session(b"another key", 1, 3600)
    expired, _ = _cookie(api, "viewer", lifetime=-10)
    for value in (
        payload + "." + mac[:-2] + ("AA" if not mac.endswith("AA") else "BB"),
        payload + "x." + mac,
        forged_admin,
        expired,
        "garbage",
        "a.b.c",
        "",
    ):
        response = api.client.get(f"{API}/files", headers=_with_cookie(value))
        assert response.status_code == 401, value
    from landscape.index.accounts import remove_user

    with api.session() as session:
        remove_user(session, "viewer")
        session.commit()
    assert api.client.get(f"{API}/files", headers=_with_cookie(cookie)).status_code == 401


def test_the_schema_and_the_docs_need_a_login(api: Api) -> None:
    for path in (f"{API}/openapi.json", "/docs"):
        assert api.client.get(path).status_code == 401
        assert api.get(path).status_code == 200

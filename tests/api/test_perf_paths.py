"""The fast paths of the API (issue 14's targets) keep its behaviour: a cached thumbnail is
still confined to the served roots and still needs a token, its ETag gives a 304, a token is
checked in one SELECT and still records its use, and a page of search resolves the model once;
on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, update

from landscape.api.security import SECURITY_HEADERS
from landscape.index.schema import ApiToken, File
from tests.api.conftest import Api

API = "/api/v1"


def _photo_id(api: Api) -> int:
    photos = api.all_files(media="image", status="ok", limit=200)
    assert photos
    return int(photos[0]["id"])


@contextmanager
def _statements(api: Api) -> Iterator[list[str]]:
    """Every SQL statement the service sends while the block runs."""
    sent: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        sent.append(statement)

    engine = api.app.state.landscape.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", record)


def test_a_cached_thumbnail_has_an_etag_and_answers_304_to_it(api: Api) -> None:
    url = f"{API}/files/{_photo_id(api)}/thumbnail"
    first = api.get(url)
    assert first.status_code == 200 and first.headers["content-type"] == "image/jpeg"
    etag = first.headers["etag"]
    assert etag.startswith('W/"') and first.headers["cache-control"] == "private, max-age=86400"
    again = api.get(url)  # a real cached 200 with the bytes, as a client without cache gets
    assert again.status_code == 200 and again.content == first.content
    assert again.headers["etag"] == etag
    for sent in (etag, etag.removeprefix("W/"), f'"other", {etag}', "*"):
        unchanged = api.client.get(url, headers={**api.headers("viewer"), "If-None-Match": sent})
        assert unchanged.status_code == 304 and unchanged.content == b"", sent
        assert unchanged.headers["etag"] == etag
        assert all(unchanged.headers[name] == value for name, value in SECURITY_HEADERS.items())
    other = api.client.get(url, headers={**api.headers("viewer"), "If-None-Match": '"other"'})
    assert other.status_code == 200 and other.content == first.content


def test_a_cached_thumbnail_still_needs_a_token(api: Api) -> None:
    url = f"{API}/files/{_photo_id(api)}/thumbnail"
    etag = api.get(url).headers["etag"]
    assert api.client.get(url).status_code == 401
    assert api.client.get(url, headers={"If-None-Match": etag}).status_code == 401
    bad = {"Authorization": "Bearer lsk_not-a-real-token", "If-None-Match": etag}
    assert api.client.get(url, headers=bad).status_code == 401


def test_a_cached_thumbnail_of_a_file_gone_from_the_roots_is_404(api: Api, tmp_path: Path) -> None:
    """The cache is keyed by content: a file that left the disk (or the served roots) is
    refused even though its thumbnail is cached."""
    file_id = _photo_id(api)
    url = f"{API}/files/{file_id}/thumbnail"
    assert api.get(url).status_code == 200
    with api.session() as session:
        row = session.get(File, file_id)
        assert row is not None
        moved = tmp_path / "moved.jpg"
        (api.root / row.relative_path).rename(moved)
    try:
        gone = api.get(url)
        assert gone.status_code == 404 and gone.headers["content-type"] == "application/json"
    finally:
        moved.rename(api.root / row.relative_path)
    assert api.get(url).status_code == 200


def test_a_token_is_checked_in_one_select_and_records_its_use(api: Api) -> None:
    with api.session() as session:
        session.execute(update(ApiToken).values(last_used_at=None))
        session.commit()
    with _statements(api) as sent:
        assert api.get(f"{API}/health").status_code == 200  # no auth, no database
        assert api.get(f"{API}/files", params={"limit": 1}).status_code == 200
    tokens = [s for s in sent if "api_tokens" in s and s.lstrip().upper().startswith("SELECT")]
    assert len(tokens) == 1 and "users" in tokens[0]
    assert sum(s.lstrip().upper().startswith("UPDATE API_TOKENS") for s in sent) == 1
    with api.session() as session:
        used = [t.last_used_at for t in session.query(ApiToken)]
    assert sum(u is not None for u in used) == 1
    with _statements(api) as sent:  # used a moment ago: no write this time
        assert api.get(f"{API}/files", params={"limit": 1}).status_code == 200
    assert not any(s.lstrip().upper().startswith("UPDATE") for s in sent)


def test_a_page_of_search_resolves_the_model_once(api: Api) -> None:
    """The page and its videos' timelines read the same model, looked up once."""
    videos = api.all_files(media="video")
    assert videos and videos[0]["segments"]
    with _statements(api) as sent:
        page = api.get(f"{API}/files", params={"limit": 200})
    assert page.status_code == 200
    assert any(item["media_type"] == "video" and item["segments"] for item in page.json()["items"])
    assert sum("FROM models" in s for s in sent) == 1, sent

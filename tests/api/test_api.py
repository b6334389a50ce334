"""What every endpoint of ``/api/v1`` answers, over a real index on SQLite and PostgreSQL."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import func, select, update

from landscape.index.repository import haversine_km
from landscape.index.schema import Correction, File, Prediction
from tests.api.conftest import Api
from tests.conftest import _photo_array

API = "/api/v1"
CLASSES = ["coast", "desert", "forest", "glacier", "mountain"]


def _jpeg(seed: int = 11, size: tuple[int, int] = (96, 72)) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(_photo_array(seed, size)).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def _file_count(api: Api) -> int:
    with api.session() as session:
        return int(session.scalar(select(func.count()).select_from(File)) or 0)


def _photo(api: Api, **where: Any) -> dict[str, Any]:
    """A labelled photo of the archive (from the listing)."""
    photos = [
        h
        for h in api.all_files(media="image", status="ok", limit=200)
        if h["label"] and all(h[k] == v for k, v in where.items())
    ]
    assert photos
    return photos[0]


# -- service -------------------------------------------------------------------------------


def test_health_answers_without_a_token(api: Api) -> None:
    response = api.client.get(f"{API}/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_models_lists_the_active_model_with_its_prediction_count(api: Api) -> None:
    body = api.get(f"{API}/models").json()
    assert len(body["items"]) == 1
    model = body["items"][0]
    assert model["active"] is True
    assert model["classes"] == CLASSES
    labelled = [h for h in api.all_files(limit=200) if h["label"] is not None]
    assert model["predictions"] == len(labelled) == 12  # 10 photos, the plain PNG, the video
    assert model["model_id"] == labelled[0]["model_id"]


def test_stats_count_files_labels_months_and_corrections(api: Api) -> None:
    files = api.all_files(limit=200)
    stats = api.get(f"{API}/stats").json()
    assert stats["files"] == len(files) == _file_count(api) == 16
    assert stats["media"] == {"image": 12, "video": 1, "other": 3}
    labelled = [h for h in files if h["label"] is not None]
    expected: dict[str, int] = {}
    for hit in labelled:
        expected[hit["label"]] = expected.get(hit["label"], 0) + 1
    assert stats["labels"] == expected
    assert sum(sum(m.values()) for m in stats["months"].values()) == len(labelled)
    assert stats["unknown_rate"] == pytest.approx(
        sum(bool(h["is_unknown"]) for h in labelled) / len(labelled)
    )
    assert stats["corrections"] == {} and stats["confirmations"] == 0

    photo = _photo(api)
    other = next(c for c in CLASSES if c != photo["label"])
    assert (
        api.post(f"{API}/files/{photo['id']}/corrections", json={"label": other}).status_code == 201
    )
    assert (
        api.post(f"{API}/files/{photo['id']}/corrections", json={"label": photo["label"]})
    ).status_code == 201
    stats = api.get(f"{API}/stats").json()
    assert stats["corrections"] == {other: 1}
    assert stats["confirmations"] == 1


# -- listing and filters -------------------------------------------------------------------


@pytest.mark.parametrize("sort", ["newest", "oldest"])
def test_cursor_pagination_walks_every_file_exactly_once(api: Api, sort: str) -> None:
    everything = api.get(f"{API}/files", params={"limit": 200, "sort": sort}).json()
    assert everything["next_cursor"] is None
    walked = api.all_files(limit=3, sort=sort)
    ids = [h["id"] for h in walked]
    assert len(ids) == len(set(ids)) == _file_count(api) == 16
    assert ids == [h["id"] for h in everything["items"]]
    keys = [(h["taken_at"], h["id"]) for h in walked]
    assert keys == sorted(keys, reverse=sort == "newest")
    # An exact multiple of the page size ends with next_cursor None on the last full page.
    assert len(api.all_files(limit=4, sort=sort)) == 16
    assert len(api.all_files(limit=16, sort=sort)) == 16


def test_pagination_carries_the_filters(api: Api) -> None:
    images = api.all_files(limit=2, media="image")
    assert len(images) == 12 and {h["media_type"] for h in images} == {"image"}
    assert len({h["id"] for h in images}) == 12


def test_every_filter_returns_exactly_the_matching_files(api: Api) -> None:
    files = api.all_files(limit=200)
    labelled = [h for h in files if h["label"] is not None]

    def check(params: dict[str, Any], keep: Callable[[dict[str, Any]], bool]) -> None:
        got = sorted(h["id"] for h in api.all_files(limit=200, **params))
        assert got == sorted(h["id"] for h in files if keep(h)), params
        assert got, params  # every case here selects something

    label = labelled[0]["label"]

    def has_label(h: dict[str, Any]) -> bool:
        return h["label"] == label or any(s["label"] == label for s in h["segments"] or ())

    check({"label": label}, has_label)
    floor = sorted(h["confidence"] for h in labelled)[len(labelled) // 2]
    check(
        {"min_confidence": floor},
        lambda h: h["confidence"] is not None and h["confidence"] >= floor,
    )
    check(
        {"max_confidence": floor},
        lambda h: h["confidence"] is not None and h["confidence"] <= floor,
    )
    check({"unknown": False}, lambda h: h["is_unknown"] is False)
    check({"media": "video"}, lambda h: h["media_type"] == "video")
    check({"media": "other"}, lambda h: h["media_type"] == "other")
    check({"status": "error"}, lambda h: h["status"] == "error")
    middle = sorted(h["taken_at"] for h in files)[8][:10]
    check({"taken_after": middle}, lambda h: h["taken_at"][:10] >= middle)
    check({"taken_before": middle}, lambda h: h["taken_at"][:10] <= middle)
    check({"camera": "landscapesynth"}, lambda h: h["camera"] is not None)
    check({"camera": "LS-1"}, lambda h: h["camera"] is not None)
    placed = next(h for h in files if h["place"])
    country = placed["place"].split(", ")[-1]
    check({"place": country.lower()}, lambda h: bool(h["place"]) and country in h["place"])
    check({"q": "coast campaign"}, lambda h: "2024-05 coast campaign/" in h["path"])
    check({"q": ".mp4"}, lambda h: h["path"].endswith(".mp4"))
    lat, lon = placed["latitude"], placed["longitude"]
    bbox = f"{lat - 1},{lon - 1},{lat + 1},{lon + 1}"

    def in_box(h: dict[str, Any]) -> bool:
        return h["latitude"] is not None and abs(h["latitude"] - lat) <= 1 >= abs(
            h["longitude"] - lon
        )

    check({"bbox": bbox}, in_box)

    def near(h: dict[str, Any]) -> bool:
        return (
            h["latitude"] is not None
            and haversine_km(lat, lon, h["latitude"], h["longitude"]) <= 50
        )

    check({"near": f"{lat},{lon},50"}, near)
    check({"model": labelled[0]["model_id"], "label": label}, has_label)
    check(
        {"media": "image", "label": label, "sort": "oldest"},
        lambda h: h["media_type"] == "image" and h["label"] == label,
    )
    # A model the index does not know labels nothing.
    unknown_model = api.get(f"{API}/files", params={"model": "nope", "label": label}).json()
    assert unknown_model["items"] == []


def test_sort_oldest_reverses_newest(api: Api) -> None:
    newest = [h["id"] for h in api.all_files(limit=200)]
    oldest = [h["id"] for h in api.all_files(limit=200, sort="oldest")]
    assert oldest == newest[::-1]


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"limit": 201}, 422),
        ({"limit": 0}, 422),
        ({"min_confidence": 1.5}, 422),
        ({"media": "audio"}, 422),
        ({"status": "gone"}, 422),
        ({"sort": "random"}, 422),
        ({"taken_after": "yesterday"}, 422),
        ({"unknown": "maybe"}, 422),
        ({"bbox": "1,2,3"}, 400),
        ({"bbox": "50,0,40,10"}, 400),
        ({"bbox": "a,b,c,d"}, 400),
        ({"near": "48,2"}, 400),
        ({"near": "48,2,-5"}, 400),
        ({"near": "nan,2,5"}, 400),
        ({"cursor": "not-a-cursor"}, 400),
        ({"cursor": "!!!"}, 400),
    ],
)
def test_bad_filters_are_4xx_with_a_message(api: Api, params: dict[str, Any], code: int) -> None:
    response = api.get(f"{API}/files", params=params)
    assert response.status_code == code, response.text
    assert response.json()["detail"]


# -- one file --------------------------------------------------------------------------------


def test_file_detail_has_metadata_prediction_and_provenance(api: Api) -> None:
    photo = _photo(api, camera="LandscapeSynth LS-1")
    detail = api.get(f"{API}/files/{photo['id']}").json()
    assert detail["id"] == photo["id"]
    assert detail["path"] == photo["path"]
    assert Path(detail["path"]).is_file()
    assert detail["name"] == Path(photo["path"]).name
    assert detail["media_type"] == "image" and detail["mime"] == "image/jpeg"
    assert detail["metadata"]["camera_model"] and detail["metadata"]["width"] == 64
    assert detail["prediction"]["label"] == photo["label"]
    assert set(detail["prediction"]["probabilities"]) == set(CLASSES)
    assert detail["prediction"]["model_id"] == detail["model"]["model_id"] == photo["model_id"]
    assert detail["segments"] == [] and detail["corrections"] == []
    assert detail["reviewed_label"] is None


def test_video_detail_has_its_timeline(api: Api) -> None:
    video = api.all_files(media="video")[0]
    detail = api.get(f"{API}/files/{video['id']}").json()
    assert [s["label"] for s in detail["segments"]] == ["coast", "forest", "glacier"]
    assert [s["start"] for s in detail["segments"]] == [0.0, 4.0, 8.0]
    assert all(s["has_keyframe"] for s in detail["segments"])
    assert detail["metadata"]["duration"] == pytest.approx(12, abs=0.5)


def test_unknown_file_is_404(api: Api) -> None:
    for suffix in ("", "/thumbnail", "/content", "/similar"):
        response = api.get(f"{API}/files/999999{suffix}")
        assert response.status_code == 404, suffix
        assert "999999" in response.json()["detail"]
    assert api.get(f"{API}/files/abc").status_code == 422
    # Beyond the databases' integer ids: a 422, not a failed query.
    for path in ("/files/6227020800", "/files/6227020800/content", "/files/0", "/files/-3"):
        assert api.get(API + path).status_code == 422, path
    huge = api.post(f"{API}/files/6227020800/corrections", json={"label": "coast"})
    assert huge.status_code == 422
    assert api.get(f"{API}/corrections", params={"before": 2**40}).status_code == 422
    assert api.get(f"{API}/audit", "admin", params={"before": 2**40}).status_code == 422


def test_thumbnail_is_made_once_and_read_from_the_cache(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    from landscape.api import thumbnails

    photo = _photo(api)
    with api.session() as session:
        content_hash = session.get(File, photo["id"]).content_hash
    cached = api.settings.thumbnail_dir / content_hash[:2] / f"{content_hash}.jpg"
    assert not cached.exists()
    first = api.get(f"{API}/files/{photo['id']}/thumbnail")
    assert first.status_code == 200
    assert first.headers["content-type"] == "image/jpeg"
    assert cached.is_file() and cached.read_bytes() == first.content
    with Image.open(io.BytesIO(first.content)) as image:
        assert max(image.size) <= thumbnails.SIDE

    def refuse(*args: Any, **kwargs: Any) -> bytes:
        raise AssertionError("the thumbnail was made again")

    monkeypatch.setattr(thumbnails, "make_thumbnail", refuse)
    stamp = cached.stat().st_mtime_ns
    second = api.get(f"{API}/files/{photo['id']}/thumbnail")
    assert second.status_code == 200 and second.content == first.content
    assert cached.stat().st_mtime_ns == stamp


def test_video_thumbnail_is_its_keyframe_and_others_have_none(api: Api) -> None:
    video = api.all_files(media="video")[0]
    response = api.get(f"{API}/files/{video['id']}/thumbnail")
    assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(response.content)) as image:
        assert image.format == "JPEG"
    other = api.all_files(media="other")[0]
    assert api.get(f"{API}/files/{other['id']}/thumbnail").status_code == 404
    broken = api.all_files(status="error")[0]
    assert api.get(f"{API}/files/{broken['id']}/thumbnail").status_code in (400, 404, 422)


def test_content_serves_the_bytes_and_ranges(api: Api) -> None:
    video = api.all_files(media="video")[0]
    data = Path(video["path"]).read_bytes()
    whole = api.get(f"{API}/files/{video['id']}/content")
    assert whole.status_code == 200
    assert whole.content == data
    assert whole.headers["content-type"] == "video/mp4"
    assert whole.headers["accept-ranges"] == "bytes"

    headers = {**api.headers("viewer"), "Range": "bytes=100-199"}
    part = api.client.get(f"{API}/files/{video['id']}/content", headers=headers)
    assert part.status_code == 206
    assert part.content == data[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(data)}"

    headers["Range"] = "bytes=-10"
    tail = api.client.get(f"{API}/files/{video['id']}/content", headers=headers)
    assert tail.status_code == 206 and tail.content == data[-10:]
    headers["Range"] = f"bytes={len(data) - 5}-"
    rest = api.client.get(f"{API}/files/{video['id']}/content", headers=headers)
    assert rest.status_code == 206 and rest.content == data[-5:]
    headers["Range"] = f"bytes={len(data) + 10}-{len(data) + 20}"
    beyond = api.client.get(f"{API}/files/{video['id']}/content", headers=headers)
    assert beyond.status_code == 416


def test_similar_ranks_other_files_with_scores(api: Api) -> None:
    photo = _photo(api)
    response = api.get(f"{API}/files/{photo['id']}/similar", params={"limit": 5})
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert 0 < len(items) <= 5
    assert photo["id"] not in [h["id"] for h in items]
    scores = [h["score"] for h in items]
    assert scores == sorted(scores, reverse=True)
    images = api.get(
        f"{API}/files/{photo['id']}/similar", params={"limit": 50, "media": "image"}
    ).json()["items"]
    assert images and {h["media_type"] for h in images} == {"image"}


def test_similar_of_a_file_without_embedding_is_a_4xx(api: Api) -> None:
    other = api.all_files(media="other")[0]
    response = api.get(f"{API}/files/{other['id']}/similar")
    assert 400 <= response.status_code < 500
    assert response.json()["detail"]


# -- corrections and review ------------------------------------------------------------------


def test_a_correction_records_who_when_and_which_model(api: Api) -> None:
    photo = _photo(api)
    wrong = next(c for c in CLASSES if c != photo["label"])
    before = datetime.now().astimezone()
    response = api.post(
        f"{API}/files/{photo['id']}/corrections", json={"label": wrong, "note": "seen on site"}
    )
    assert response.status_code == 201, response.text
    made = response.json()
    assert made["user"] == "analyst"
    assert made["label"] == wrong and made["previous_label"] == photo["label"]
    assert made["confirmed"] is False
    assert made["model_id"] == photo["model_id"]
    assert made["note"] == "seen on site"
    when = datetime.fromisoformat(made["created_at"])
    if when.tzinfo is None:
        pytest.fail(f"created_at {made['created_at']!r} has no time zone")
    assert abs((when - before).total_seconds()) < 120

    detail = api.get(f"{API}/files/{photo['id']}").json()
    assert detail["reviewed_label"] == wrong
    assert detail["corrections"] == [made]
    listed = api.get(f"{API}/corrections").json()
    assert listed["items"] == [made]
    assert api.get(f"{API}/corrections", params={"user": "analyst"}).json()["items"] == [made]
    assert api.get(f"{API}/corrections", params={"label": wrong}).json()["items"] == [made]
    assert api.get(f"{API}/corrections", params={"user": "admin"}).json()["items"] == []

    audit = api.get(f"{API}/audit", "admin").json()["items"]
    entry = next(e for e in audit if e["target"] == f"file:{photo['id']}")
    assert entry["user"] == "analyst" and entry["action"] == "label.correct"
    assert entry["details"] == {
        "label": wrong,
        "previous": photo["label"],
        "model_id": photo["model_id"],
    }


def test_the_models_own_label_is_a_confirmation_and_the_newest_label_wins(api: Api) -> None:
    photo = _photo(api)
    wrong = next(c for c in CLASSES if c != photo["label"])
    url = f"{API}/files/{photo['id']}/corrections"
    assert api.post(url, json={"label": wrong}).json()["confirmed"] is False
    confirmed = api.post(url, "admin", json={"label": photo["label"]}).json()
    assert confirmed["confirmed"] is True and confirmed["user"] == "admin"
    detail = api.get(f"{API}/files/{photo['id']}").json()
    assert detail["reviewed_label"] == photo["label"]
    assert [c["label"] for c in detail["corrections"]] == [photo["label"], wrong]
    actions = [e["action"] for e in api.get(f"{API}/audit", "admin").json()["items"]]
    assert actions[:2] == ["label.confirm", "label.correct"]


def test_a_video_segment_can_be_corrected(api: Api) -> None:
    video = api.all_files(media="video")[0]
    url = f"{API}/files/{video['id']}/corrections"
    made = api.post(url, json={"label": "desert", "segment": 2}).json()
    assert made["segment"] == 2 and made["previous_label"] == "forest"
    assert api.post(url, json={"label": "desert", "segment": 9}).status_code == 400


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"label": "volcano"}, 400),
        ({"label": ""}, 422),
        ({"label": "x" * 200}, 422),
        ({"label": "coast", "note": "n" * 2001}, 422),
        ({"note": "no label"}, 422),
        ({"label": "coast", "segment": -1}, 422),
    ],
)
def test_bad_corrections_are_refused_and_nothing_is_stored(
    api: Api, body: dict[str, Any], code: int
) -> None:
    photo = _photo(api)
    response = api.post(f"{API}/files/{photo['id']}/corrections", json=body)
    assert response.status_code == code, response.text
    assert response.json()["detail"]
    assert api.get(f"{API}/corrections").json()["items"] == []
    with api.session() as session:
        assert session.scalar(select(func.count()).select_from(Correction)) == 0


def test_correcting_an_unknown_file_is_404(api: Api) -> None:
    assert api.post(f"{API}/files/999999/corrections", json={"label": "coast"}).status_code == 404


def test_corrections_page_with_before(api: Api) -> None:
    photos = [h for h in api.all_files(media="image", status="ok") if h["label"]]
    for hit in photos[:3]:
        assert (
            api.post(f"{API}/files/{hit['id']}/corrections", json={"label": "coast"}).status_code
            == 201
        )
    first = api.get(f"{API}/corrections", params={"limit": 2}).json()
    assert len(first["items"]) == 2 and first["next_before"] is not None
    second = api.get(
        f"{API}/corrections", params={"limit": 2, "before": first["next_before"]}
    ).json()
    assert len(second["items"]) == 1
    ids = [c["id"] for c in first["items"] + second["items"]]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 3


def test_review_queue_lists_unreviewed_files_unknowns_first(api: Api) -> None:
    queue = api.get(f"{API}/review", params={"limit": 100}).json()["items"]
    labelled = [h for h in api.all_files() if h["label"] is not None]
    assert sorted(i["file_id"] for i in queue) == sorted(h["id"] for h in labelled)
    margins = [i["margin"] for i in queue]
    assert margins == sorted(margins)  # least sure first

    # Two files become unknowns: they lead the queue; a corrected file leaves it.
    unknown_ids = [queue[-1]["file_id"], queue[-2]["file_id"]]
    with api.session() as session:
        session.execute(
            update(Prediction)
            .where(Prediction.file_id.in_(unknown_ids), Prediction.segment == 0)
            .values(is_unknown=True)
        )
        session.commit()
    corrected = queue[0]["file_id"]
    assert (
        api.post(f"{API}/files/{corrected}/corrections", json={"label": "coast"}).status_code == 201
    )
    queue = api.get(f"{API}/review", params={"limit": 100}).json()["items"]
    assert {i["file_id"] for i in queue[:2]} == set(unknown_ids)
    assert all(i["is_unknown"] for i in queue[:2]) and not any(i["is_unknown"] for i in queue[2:])
    assert corrected not in [i["file_id"] for i in queue]
    assert len(queue) == len(labelled) - 1
    assert len(api.get(f"{API}/review", params={"limit": 3}).json()["items"]) == 3
    by_label = api.get(f"{API}/review", params={"label": "coast"}).json()["items"]
    assert by_label and {i["label"] for i in by_label} == {"coast"}


# -- uploads ---------------------------------------------------------------------------------


def test_an_upload_is_stored_indexed_and_classified(api: Api) -> None:
    count = _file_count(api)
    response = api.post(
        f"{API}/uploads", files={"file": ("field photo.jpg", _jpeg(), "image/jpeg")}
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["label"] in CLASSES
    assert 0 <= body["confidence"] <= 1 and set(body["probabilities"]) == set(CLASSES)
    assert body["media_type"] == "image"
    assert body["model_id"]
    stored = Path(body["path"])
    assert stored.is_file() and stored.read_bytes() == _jpeg()
    assert api.settings.upload_root.resolve() in stored.resolve().parents
    assert stored.name.endswith("-field photo.jpg")
    assert _file_count(api) == count + 1

    detail = api.get(f"{API}/files/{body['id']}").json()
    assert detail["prediction"]["label"] == body["label"]
    content = api.get(f"{API}/files/{body['id']}/content")
    assert content.status_code == 200 and content.content == _jpeg()
    assert api.get(f"{API}/files/{body['id']}/thumbnail").status_code == 200
    assert body["id"] in [h["id"] for h in api.all_files()]
    audit = api.get(f"{API}/audit", "admin").json()["items"]
    assert audit[0]["action"] == "file.upload" and audit[0]["user"] == "analyst"
    assert audit[0]["target"] == f"file:{body['id']}"
    # The same bytes again: a second file, no collision.
    again = api.post(f"{API}/uploads", files={"file": ("field photo.jpg", _jpeg(), "image/jpeg")})
    assert again.status_code == 201, again.text


def test_an_uploaded_video_gets_its_timeline(api: Api) -> None:
    video = api.all_files(media="video")[0]
    data = Path(video["path"]).read_bytes()
    response = api.post(f"{API}/uploads", files={"file": ("flight.mp4", data, "video/mp4")})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["media_type"] == "video" and body["label"] == "coast"
    assert [s["label"] for s in body["segments"]] == ["coast", "forest", "glacier"]


# -- audit -----------------------------------------------------------------------------------


def test_audit_pages_newest_first(api: Api) -> None:
    photos = [h for h in api.all_files(media="image", status="ok") if h["label"]]
    for hit in photos[:3]:
        api.post(f"{API}/files/{hit['id']}/corrections", json={"label": "coast"})
    first = api.get(f"{API}/audit", "admin", params={"limit": 2}).json()
    assert len(first["items"]) == 2 and first["next_before"]
    rest = api.get(f"{API}/audit", "admin", params={"limit": 2, "before": first["next_before"]})
    ids = [e["id"] for e in first["items"] + rest.json()["items"]]
    assert ids == sorted(ids, reverse=True)
    assert all(date.fromisoformat(e["at"][:10]) for e in first["items"])

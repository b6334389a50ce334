"""The model lifecycle over HTTP: retrain as a background job (a real ``landscape retrain``
process), follow it, compare, promote with reclassification, roll back, discard, upload a
bundle — and the failure cases: a failing job, a killed job, two retrains at once."""

from __future__ import annotations

import io
import os
import signal
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from landscape.api import ServiceSettings, create_app
from landscape.index.accounts import add_user, issue_token
from landscape.index.db import open_index, session_factory
from landscape.index.schema import Model, Prediction
from tests.lifecycle.conftest import Reviewed, review_all


@dataclass
class Service:
    client: TestClient
    url: str
    headers: dict[str, dict[str, str]]

    def get(self, path: str, who: str = "admin") -> Any:
        return self.client.get(f"/api/v1{path}", headers=self.headers[who])

    def post(self, path: str, who: str = "admin", **kwargs: Any) -> Any:
        return self.client.post(f"/api/v1{path}", headers=self.headers[who], **kwargs)

    def wait(self, job_id: int, timeout: float = 300) -> dict[str, Any]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            job: dict[str, Any] = self.get(f"/jobs/{job_id}").json()
            if job["state"] != "running":
                return job
            time.sleep(0.5)
        raise AssertionError(f"job {job_id} still running after {timeout} s")

    def models(self) -> dict[str, dict[str, Any]]:
        return {m["model_id"]: m for m in self.get("/models").json()["items"]}


def _service(url: str, root: Path, home: Path) -> Iterator[Service]:
    engine = open_index(url)
    headers = {}
    with session_factory(engine)() as s:
        for name, role in (("boss", "admin"), ("vic", "viewer"), ("al", "analyst")):
            add_user(s, name, role, None)
            token, _ = issue_token(s, name, expires=timedelta(days=1))
            headers[role] = {"Authorization": f"Bearer {token}"}
        s.commit()
    engine.dispose()
    settings = ServiceSettings(db=url, home=home, roots=(root,), secret="k" * 32)
    app = create_app(settings)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Service(client, url, headers)
    app.state.landscape.engine.dispose()


@pytest.fixture
def service(reviewed: Reviewed, tmp_path: Path) -> Iterator[Service]:
    yield from _service(reviewed.copy(tmp_path), reviewed.archive, tmp_path / "home")


def _counts(url: str) -> tuple[int, int, str | None]:
    engine = open_index(url)
    with session_factory(engine)() as s:
        models = int(s.scalar(select(func.count()).select_from(Model)) or 0)
        predictions = int(s.scalar(select(func.count()).select_from(Prediction)) or 0)
        active = s.scalar(select(Model.model_id).where(Model.active))
    engine.dispose()
    return models, predictions, active


def test_retrain_compare_promote_reclassify_rollback_discard(service: Service) -> None:
    before = _counts(service.url)
    assert service.post("/retrain", "viewer").status_code == 403
    started = service.post("/retrain", "analyst", json={"head_epochs": 1, "epochs": 1})
    assert started.status_code == 202, started.text
    job = started.json()
    assert job["state"] == "running" and job["kind"] == "retrain" and job["user"] == "al"
    second = service.post("/retrain", "admin")
    assert second.status_code == 409 and "already running" in second.json()["detail"]
    done = service.wait(job["id"])
    assert done["state"] == "succeeded", done
    assert done["progress"]["step"] == done["progress"]["steps"] == 5
    candidate = done["result"]["model_id"]
    comparison = done["result"]["comparison"]
    assert comparison["held_out"] > 0 and comparison["candidate"]["model_id"] == candidate
    models = service.models()
    assert models[candidate]["active"] is False
    assert models[candidate]["metrics"]["comparison"]["base"]["model_id"] == before[2]
    assert _counts(service.url)[2] == before[2]  # nothing promoted by a retrain

    assert service.post(f"/models/{candidate}/activate", "analyst").status_code == 403
    promoted = service.post(f"/models/{candidate}/activate", json={"reclassify": True})
    assert promoted.status_code == 200, promoted.text
    assert promoted.json()["active"]["model_id"] == candidate
    relabel = service.wait(promoted.json()["job"]["id"])
    assert relabel["state"] == "succeeded", relabel
    assert relabel["result"] == {"model_id": candidate, "reclassified": 40, "skipped_roots": []}
    models = service.models()
    assert models[candidate]["active"] and models[candidate]["predictions"] > 0
    assert models[before[2]]["predictions"] > 0  # the old model's predictions stay
    both = service.get(f"/files?model={candidate}&limit=5").json()
    assert both["items"]

    rolled = service.post("/models/rollback")
    assert rolled.status_code == 200 and rolled.json()["active"]["model_id"] == before[2]
    refused = service.client.delete(f"/api/v1/models/{before[2]}", headers=service.headers["admin"])
    assert refused.status_code == 409 and "active model" in refused.json()["detail"]
    assert (
        service.client.delete("/api/v1/models/nope-1", headers=service.headers["admin"]).status_code
        == 404
    )
    actions = [a["action"] for a in service.get("/audit").json()["items"]]
    assert {"job.retrain", "retrain", "model.promote", "model.rollback"} <= set(actions)


def test_a_failing_retrain_shows_why_and_changes_nothing(
    reviewed: Reviewed, tmp_path: Path
) -> None:
    from landscape.data.synth import SynthSpec, generate_dataset
    from landscape.index.pipeline import IndexOptions, run_index
    from landscape.inference.predictor import Predictor

    archive = tmp_path / "few"
    generate_dataset(archive, SynthSpec(per_class=2, size=64, seed=4))
    url = f"sqlite:///{tmp_path / 'few.db'}"
    engine = open_index(url)
    run_index(
        engine, [archive], predictor=Predictor.from_bundle(reviewed.bundle),
        options=IndexOptions(workers=1, memory_mb=None),
    )  # fmt: skip
    engine.dispose()
    review_all(url)
    before = _counts(url)
    for service in _service(url, archive, tmp_path / "home"):
        job = service.wait(service.post("/retrain").json()["id"])
        assert job["state"] == "failed" and job["exit_code"] == 1
        assert "too few reviewed images" in job["error"] and "at least 5" in job["error"]
        assert "Traceback" not in job["log_tail"]
    assert _counts(url) == before


def test_a_killed_retrain_is_failed_and_changes_nothing(service: Service) -> None:
    before = _counts(service.url)
    job = service.post("/retrain").json()
    pid = None
    for _ in range(100):
        pid = _pid(service.url, job["id"])
        if pid:
            break
        time.sleep(0.05)
    assert pid
    os.kill(pid, signal.SIGKILL)
    done = service.wait(job["id"], timeout=30)
    assert done["state"] == "failed" and "killed (SIGKILL)" in done["error"]
    assert _counts(service.url) == before
    # The lane is free again.
    again = service.post("/retrain", json={"head_epochs": 1, "epochs": 1, "use_base_data": False})
    assert again.status_code == 202
    assert service.wait(again.json()["id"])["state"] == "succeeded"


def _pid(url: str, job_id: int) -> int | None:
    from landscape.index.schema import Job

    engine = open_index(url)
    with session_factory(engine)() as s:
        pid = s.scalar(select(Job.pid).where(Job.id == job_id))
    engine.dispose()
    return pid


def _zip_bundle(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for member in sorted(folder.iterdir()):
            zf.write(member, member.name)
    return buffer.getvalue()


def test_upload_a_bundle(service: Service, tiny_run: Path) -> None:
    data = _zip_bundle(tiny_run / "bundle")
    files = {"file": ("tiny.landscape", data, "application/zip")}
    assert service.post("/models", "analyst", files=files).status_code == 403
    made = service.post("/models", files=files)
    assert made.status_code == 201, made.text
    assert made.json()["active"] is False
    assert made.json()["model_id"] in service.models()
    broken = service.post(
        "/models", files={"file": ("x.landscape", data[:-200], "application/zip")}
    )
    assert broken.status_code == 400 and "not a usable bundle" in broken.json()["detail"]
    assert service.get("/jobs", "viewer").status_code == 200

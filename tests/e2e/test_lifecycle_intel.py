"""The model lifecycle end to end on real photos (intel-sample): a bundle trained on one subset
labels another; an analyst corrects what it got wrong (and confirms some of what it got right)
through the API; ``landscape retrain`` fine-tunes a candidate that beats the base on the
held-out corrected files; it is promoted with reclassification, then rolled back."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from landscape.api import ServiceSettings, create_app
from landscape.index.accounts import add_user, issue_token
from landscape.index.db import open_index, session_factory
from landscape.index.pipeline import IndexOptions, run_index
from landscape.inference.predictor import Predictor
from tests.conftest import CliResult, fit_scene_head


def _subsets(intel: Path, work: Path) -> tuple[Path, Path]:
    base, archive = work / "base-data", work / "archive"
    for folder in sorted(p for p in intel.iterdir() if p.is_dir()):
        photos = sorted(folder.glob("*.jpg"))
        for target, chosen in ((base, photos[:20]), (archive, photos[100:140])):
            (target / folder.name).mkdir(parents=True)
            for photo in chosen:
                shutil.copy(photo, target / folder.name / photo.name)
    return base, archive


def test_correct_retrain_compare_promote_reclassify_rollback(
    intel_dir: Path, tmp_path: Path, run_cli: Callable[..., CliResult]
) -> None:
    base_data, archive = _subsets(intel_dir, tmp_path)
    bundle = fit_scene_head(base_data, tmp_path / "base")
    url = f"sqlite:///{tmp_path / 'index.db'}"
    engine = open_index(url)
    run_index(
        engine,
        [archive],
        predictor=Predictor.from_bundle(bundle),
        options=IndexOptions(workers=1, memory_mb=None),
    )
    with session_factory(engine)() as s:
        add_user(s, "ana", "analyst", None)
        token, _ = issue_token(s, "ana", expires=timedelta(days=1))
        s.commit()
    engine.dispose()

    app = create_app(
        ServiceSettings(db=url, home=tmp_path / "home", roots=(archive,), secret="s" * 32)
    )
    auth = {"Authorization": f"Bearer {token}"}
    wrong = confirmed = 0
    with TestClient(app) as client:
        items: list[dict[str, Any]] = []
        cursor = None
        while True:
            params = {"limit": 100, **({"cursor": cursor} if cursor else {})}
            page = client.get("/api/v1/files", params=params, headers=auth).json()
            items += page["items"]
            if (cursor := page["next_cursor"]) is None:
                break
        assert len(items) == 240
        for item in items:
            truth = Path(item["path"]).parent.name
            if item["label"] != truth:
                wrong += 1
            elif item["id"] % 3:
                continue  # a third of the right ones are confirmed, as a reviewer would
            else:
                confirmed += 1
            made = client.post(
                f"/api/v1/files/{item['id']}/corrections", json={"label": truth}, headers=auth
            )
            assert made.status_code == 201, made.text
    app.state.landscape.engine.dispose()
    assert wrong >= 15  # a 20-per-class base gets enough wrong to learn from

    run = run_cli("retrain", "--db", url, "--out", str(tmp_path / "retrain"), "--json")
    assert run.code == 0, run.err
    result = json.loads(run.out)
    comparison = result["comparison"]
    base_acc = comparison["base"]["accuracy"]
    cand_acc = comparison["candidate"]["accuracy"]
    assert cand_acc > base_acc, comparison
    assert comparison["candidate"]["macro_f1"] > comparison["base"]["macro_f1"]
    assert any(change["fixed"] for change in comparison["changed"])

    candidate, base = result["model_id"], result["base_model_id"]
    promoted = run_cli("registry", "promote", candidate, "--db", url, "--reclassify")
    assert promoted.code == 0 and "reclassified 240 files" in promoted.out
    listed = {
        m["model_id"]: m for m in json.loads(run_cli("registry", "list", "--db", url, "--json").out)
    }
    assert listed[candidate]["active"] and listed[candidate]["predictions"] == 240
    assert listed[base]["predictions"] == 240  # kept, still searchable
    old = run_cli("search", "--db", url, "--model", base, "--json")
    assert old.code == 0 and json.loads(old.out)
    rolled = run_cli("registry", "rollback", "--db", url)
    assert rolled.code == 0
    listed = {
        m["model_id"]: m for m in json.loads(run_cli("registry", "list", "--db", url, "--json").out)
    }
    assert listed[base]["active"] and not listed[candidate]["active"]

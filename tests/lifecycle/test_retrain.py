"""``landscape retrain`` on a real index: reviewed files → candidate → comparison → registry."""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select

from landscape.data.synth import SynthSpec, generate_dataset
from landscape.errors import UserError
from landscape.index.db import open_index, session_factory
from landscape.index.pipeline import IndexOptions, run_index
from landscape.index.registry import active_model, list_models
from landscape.index.schema import AuditEntry, Correction, Model, Prediction
from landscape.inference.predictor import Predictor
from landscape.lifecycle import RetrainOptions, build_retrain_data, pseudo_labels, retrain
from tests.conftest import CliResult
from tests.lifecycle.conftest import Reviewed, review_all

FAST = {"head_epochs": 1, "epochs": 1, "num_workers": 0, "progress": False}


def test_held_out_files_never_train_and_near_duplicates_stay_out(
    reviewed: Reviewed, tmp_path: Path
) -> None:
    url = reviewed.copy(tmp_path)
    with session_factory(open_index(url))() as s:
        classes = list(s.scalars(select(Model.classes)).one())
        first = build_retrain_data(s, classes, holdout=0.3, seed=0)
        # An extra-data folder holding a byte copy of every held-out file, and one other image.
        extra = tmp_path / "extra"
        for h in first.held_out:
            (extra / h.label).mkdir(parents=True, exist_ok=True)
            shutil.copy(h.path, extra / h.label / f"copy-{h.path.name}")
        other = next(
            p for p in reviewed.archive.rglob("*.jpg") if p not in {h.path for h in first.held_out}
        )
        shutil.copy(other, extra / first.held_out[0].label / "other.jpg")
        data = build_retrain_data(s, classes, holdout=0.3, seed=0, extra_data=extra)
    held = {h.path for h in data.held_out}
    assert held == {h.path for h in first.held_out}  # the split is seeded
    assert len(held) >= 5 and {h.label for h in data.held_out} == set(classes)
    trained = {x.path for x in data.train} | {x.path for x in data.val}
    assert not held & trained
    assert data.dropped_near_duplicates == len(held)
    assert [x.path.name for x in data.train if x.path.parent.parent == extra] == ["other.jpg"]
    manifest = data.write(tmp_path / "data")
    with open(manifest, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["split"] for r in rows} == {"train", "val"}
    assert not {Path(r["path"]) for r in rows} & {h.resolve() for h in held}
    assert json.loads((tmp_path / "data" / "classes.json").read_text())["classes"] == classes


def test_too_few_reviews_is_one_clear_error(
    reviewed: Reviewed, tmp_path: Path, scene_run: Path
) -> None:
    archive = tmp_path / "few"
    generate_dataset(archive, SynthSpec(per_class=3, size=64, seed=2))
    url = f"sqlite:///{tmp_path / 'few.db'}"
    engine = open_index(url)
    run_index(
        engine,
        [archive],
        predictor=Predictor.from_bundle(scene_run / "bundle"),
        options=IndexOptions(workers=1, memory_mb=None),
    )
    review_all(url)
    with pytest.raises(UserError, match=r"too few reviewed images.*coast has 3.*at least 5"):
        retrain(engine, RetrainOptions(out=tmp_path / "run", **FAST))
    assert not (tmp_path / "run").exists()
    with session_factory(engine)() as s:
        assert len(list_models(s)) == 1


def test_pseudo_labels_skip_reviewed_unsure_and_unknown(reviewed: Reviewed, tmp_path: Path) -> None:
    url = reviewed.copy(tmp_path)
    with session_factory(open_index(url))() as s:
        model_id = s.scalar(select(Model.model_id))
        assert model_id
        reviewed_ids = set(s.scalars(select(Correction.file_id)))
        s.execute(
            Correction.__table__.delete().where(Correction.file_id.in_(sorted(reviewed_ids)[:6]))
        )
        found = pseudo_labels(s, model_id, min_confidence=0.5, exclude=set())
        confident = {
            file_id
            for file_id, conf, unknown in s.execute(
                select(Prediction.file_id, Prediction.confidence, Prediction.is_unknown)
            )
            if conf >= 0.5 and not unknown
        }
        still_reviewed = set(s.scalars(select(Correction.file_id)))
    ids = {f for f, _, _ in found}
    assert ids and ids <= set(sorted(reviewed_ids)[:6]) & confident
    assert not ids & still_reviewed


def test_retrain_registers_an_inactive_candidate_with_an_honest_comparison(
    reviewed: Reviewed, tmp_path: Path
) -> None:
    url = reviewed.copy(tmp_path)
    engine = open_index(url)
    steps: list[int] = []
    result = retrain(
        engine,
        RetrainOptions(out=tmp_path / "run", **FAST),
        user="ana",
        report=lambda step, _msg: steps.append(step),
    )
    assert steps == [1, 2, 3, 4, 5]
    comparison = result.comparison
    assert comparison["base"]["model_id"] == result.base_model_id != result.model_id
    held_out = comparison["held_out"]
    assert held_out == sum(comparison["support"].values()) >= 5
    for side in ("base", "candidate"):
        assert 0 <= comparison[side]["accuracy"] <= 1
        assert sum(map(sum, comparison[side]["confusion_matrix"])) == held_out
    # Every held-out file is scored, none was trained on (the manifest holds none of them).
    with open(tmp_path / "run" / "data" / "held_out.csv", newline="") as fh:
        held = {Path(r["path"]).resolve() for r in csv.DictReader(fh)}
    with open(tmp_path / "run" / "train" / "split.csv", newline="") as fh:
        trained = {Path(r["path"]).resolve() for r in csv.DictReader(fh)}
    assert len(held) == held_out and not held & trained
    assert comparison["counts"]["extra_data"] > 0  # the base bundle's own training data
    assert comparison["calibration"] is None  # the base was not calibrated: nothing to match
    with session_factory(engine)() as s:
        active = active_model(s)
        assert active is not None and active.model_id == result.base_model_id
        candidate = s.get(Model, result.model_id)
        assert candidate is not None and not candidate.active
        assert candidate.metrics["comparison"]["candidate"]["model_id"] == result.model_id
        assert candidate.metrics["base_model_id"] == result.base_model_id
        assert s.scalar(select(AuditEntry.user_name).where(AuditEntry.action == "retrain")) == "ana"
    bundle_meta = json.loads((result.bundle / "bundle.json").read_text())
    assert bundle_meta["weights"]["source"] == "bundle"
    assert bundle_meta["weights"]["location"] == result.base_model_id
    engine.dispose()


def test_retrain_cli_as_a_user_runs_it(
    reviewed: Reviewed, tmp_path: Path, run_cli: Callable[..., CliResult]
) -> None:
    url = reviewed.copy(tmp_path)
    res = run_cli(
        "retrain",
        "--db",
        url,
        "--out",
        str(tmp_path / "run"),
        "--head-epochs",
        "1",
        "--epochs",
        "1",
        "--no-base-data",
        "--json",
    )
    assert res.code == 0, res.err
    out = json.loads(res.out)
    assert out["counts"].get("extra_data") is None
    assert "[5/5] held-out accuracy" in res.err
    listed = run_cli("registry", "list", "--db", url, "--json")
    models = {m["model_id"]: m for m in json.loads(listed.out)}
    assert models[out["model_id"]]["active"] is False
    again = run_cli("retrain", "--db", url, "--out", str(tmp_path / "run"))
    assert again.code == 1 and "exists and is not empty" in again.err
    missing = run_cli("retrain", "--db", url, "--base", "nope-123", "--out", str(tmp_path / "r2"))
    assert missing.code == 1 and "unknown model 'nope-123'" in missing.err


@pytest.mark.parametrize(
    ("min_files", "source"),
    [(100, "inherited from the base"), (2, "fitted on the candidate's")],
)
def test_a_calibrated_base_gets_a_calibrated_candidate(
    reviewed: Reviewed, tmp_path: Path, min_files: int, source: str
) -> None:
    from landscape.models.bundle import load_bundle, update_bundle_meta

    base = shutil.copytree(reviewed.bundle, tmp_path / "base-bundle")
    update_bundle_meta(base, temperature=1.7, unknown_threshold=0.35, unknown_score="msp")
    url = reviewed.copy(tmp_path)
    engine = open_index(url)
    with session_factory(engine)() as s:
        row = s.scalars(select(Model)).one()
        row.bundle_path = str(base)
        s.commit()
    result = retrain(
        engine,
        RetrainOptions(
            out=tmp_path / "run", use_base_data=False, min_calibration_files=min_files, **FAST
        ),
    )
    engine.dispose()
    meta = load_bundle(result.bundle).meta
    calibration = result.comparison["calibration"]
    assert source in calibration["source"]
    assert calibration["temperature"] == meta["temperature"] > 0
    assert calibration["unknown_threshold"] == meta["unknown_threshold"] is not None
    if min_files == 100:
        assert (meta["temperature"], meta["unknown_threshold"]) == (1.7, 0.35)
    else:
        assert meta["temperature"] != 1.7  # fitted anew on the candidate's val split
        assert (tmp_path / "run" / "calibration" / "metrics.json").is_file()

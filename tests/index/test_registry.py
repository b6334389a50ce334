"""``landscape registry``: register, activate, promote with reclassification, roll back,
remove — on a real index with two real bundles."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select

from landscape.data.archive import ArchiveSpec, build_archive
from landscape.errors import UserError
from landscape.index.db import open_index, session_factory
from landscape.index.pipeline import IndexOptions, run_index
from landscape.index.registry import (
    activate,
    active_model,
    add_bundle,
    list_models,
    remove_model,
    rollback,
)
from landscape.index.schema import AuditEntry, Prediction
from landscape.inference.predictor import Predictor
from tests.conftest import CliResult


@pytest.fixture
def two_models(tiny_run: Path, scene_run: Path, tmp_path: Path) -> tuple[str, Path, Path]:
    """A fresh index with two bundles registered (the first active)."""
    url = f"sqlite:///{tmp_path / 'r.db'}"
    with session_factory(open_index(url))() as s:
        add_bundle(s, scene_run / "bundle")
        add_bundle(s, tiny_run / "bundle")
        s.commit()
    return url, scene_run / "bundle", tiny_run / "bundle"


def test_activate_rollback_and_history(two_models: tuple[str, Path, Path]) -> None:
    url, _, _ = two_models
    with session_factory(open_index(url))() as s:
        models = list_models(s)
        assert [m["active"] for m in models] == [True, False]
        a, b = models[0]["model_id"], models[1]["model_id"]
        assert models[0]["data_fingerprint"] and models[0]["metrics"]
        activate(s, b, "ana")
        assert active_model(s).model_id == b  # type: ignore[union-attr]
        rollback(s, "ana")
        assert active_model(s).model_id == a  # type: ignore[union-attr]
        rollback(s, "ana")  # a rollback of a rollback goes back again
        assert active_model(s).model_id == b  # type: ignore[union-attr]
        actions = s.scalars(select(AuditEntry.action).order_by(AuditEntry.id)).all()
        assert actions.count("model.rollback") == 2 and "model.activate" in actions
        s.commit()


def test_rollback_without_history_is_one_line(tmp_path: Path, scene_run: Path) -> None:
    with session_factory(open_index(f"sqlite:///{tmp_path / 'x.db'}"))() as s:
        add_bundle(s, scene_run / "bundle")
        with pytest.raises(UserError, match="no earlier active model"):
            rollback(s)


def test_a_tampered_bundle_is_refused(tmp_path: Path, scene_run: Path) -> None:
    copy = shutil.copytree(scene_run / "bundle", tmp_path / "bundle")
    tensors = copy / "model.safetensors"
    tensors.write_bytes(tensors.read_bytes()[:-10] + b"x" * 10)
    with (
        session_factory(open_index(f"sqlite:///{tmp_path / 'x.db'}"))() as s,
        pytest.raises(UserError, match="checksum"),
    ):
        add_bundle(s, copy)


def test_promote_reclassify_keeps_both_models_then_remove(
    two_models: tuple[str, Path, Path],
    tmp_path: Path,
    run_cli: Callable[..., CliResult],
) -> None:
    url, first, _ = two_models
    root = build_archive(tmp_path / "a", ArchiveSpec(per_class=1, size=64, odd_files=False)).root
    engine = open_index(url)
    options = IndexOptions(workers=1, memory_mb=None)
    run_index(engine, [root], predictor=Predictor.from_bundle(first), options=options)
    with session_factory(engine)() as s:
        a, b = (m["model_id"] for m in list_models(s))
    result = run_cli("registry", "promote", b, "--db", url, "--reclassify", "--no-progress")
    assert result.code == 0, result.err
    with session_factory(engine)() as s:
        per_model = dict(
            s.execute(select(Prediction.model_id, func.count()).group_by(Prediction.model_id)).all()
        )
        assert per_model[a] == per_model[b] == 5  # old predictions kept, new ones added
        assert active_model(s).model_id == b  # type: ignore[union-attr]
    # Predictions of every model stay queryable.
    old = run_cli("search", "--db", url, "--model", a, "--json")
    assert old.code == 0 and len(json.loads(old.out)) == 5
    # `reclassify` labels the index again with a model (the active one by default).
    again = run_cli("registry", "reclassify", a, "--db", url, "--json")
    assert again.code == 0, again.err
    assert json.loads(again.out) == {"model_id": a, "reclassified": 5, "skipped_roots": []}
    shutil.rmtree(root)
    gone = run_cli("registry", "reclassify", "--db", url)
    assert gone.code == 0 and "not mounted" in gone.out and f"0 files with {b}" in gone.out
    unknown = run_cli("registry", "reclassify", "nope-1", "--db", url)
    assert unknown.code == 1 and "unknown model 'nope-1'" in unknown.err
    # The active one cannot go; the other one only with --force, which says what it deletes.
    refused = run_cli("registry", "remove", b, "--db", url)
    assert refused.code == 1 and "active model" in refused.err
    refused = run_cli("registry", "remove", a, "--db", url)
    assert refused.code == 1 and "--force" in refused.err
    forced = run_cli("registry", "remove", a, "--db", url, "--force")
    assert forced.code == 0 and "5 predictions" in forced.out
    listed = run_cli("registry", "list", "--db", url, "--json")
    assert [m["model_id"] for m in json.loads(listed.out)] == [b]
    with session_factory(engine)() as s, pytest.raises(UserError, match="unknown model"):
        remove_model(s, a)


def test_cli_add_activate_rollback(
    tmp_path: Path, scene_run: Path, tiny_run: Path, run_cli: Callable[..., CliResult]
) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    first = run_cli("registry", "add", str(scene_run / "bundle"), "--db", url)
    assert first.code == 0 and "(active)" in first.out
    assert run_cli("registry", "add", str(tiny_run / "bundle"), "--db", url).code == 0
    models = json.loads(run_cli("registry", "list", "--db", url, "--json").out)
    assert {"model_id", "active", "metrics", "created_at"} <= set(models[0])
    second = models[1]["model_id"]
    assert run_cli("registry", "activate", second, "--db", url).code == 0
    back = run_cli("registry", "rollback", "--db", url)
    assert back.code == 0 and models[0]["model_id"] in back.out
    missing = run_cli("registry", "activate", "nope", "--db", url)
    assert missing.code == 1 and "unknown model" in missing.err


def test_the_runs_evaluation_report_is_registered_with_the_bundle(
    tmp_path: Path, scene_run: Path
) -> None:
    """What the dashboard shows: per-class F1 and confusion from `<run>/eval/metrics.json`."""
    run = tmp_path / "run"
    shutil.copytree(scene_run / "bundle", run / "bundle")
    (run / "eval").mkdir()
    report = {
        "accuracy": 0.9,
        "macro_f1": 0.88,
        "per_class": {"coast": {"f1": 0.9}},
        "confusion_matrix": [[9, 1], [1, 9]],
        "latency": {"ignored": True},
    }
    (run / "eval" / "metrics.json").write_text(json.dumps(report))
    with session_factory(open_index(f"sqlite:///{tmp_path / 'e.db'}"))() as s:
        row = add_bundle(s, run / "bundle")
        evaluation = (row.metrics or {})["evaluation"]
    assert evaluation["per_class"] == {"coast": {"f1": 0.9}} and "latency" not in evaluation
    assert evaluation["confusion_matrix"] == [[9, 1], [1, 9]]

"""Studies: validation of the study file, expansion into runs, real tiny runs, resume, report."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from landscape.errors import ConfigError, UserError
from landscape.experiments import (
    EvaluateOptions,
    StudyConfig,
    aggregate,
    effective_jobs,
    execute_run,
    load_study,
    pareto_front,
    plan_runs,
    prepare_data,
    resolve_data,
    run_study,
)
from landscape.experiments.plan import config_hash
from landscape.experiments.progress import no_progress
from landscape.experiments.spec import flatten_keys, nest_keys
from tests.experiments._records import fake_record

REPO = Path(__file__).resolve().parents[2]
PAPER = REPO / "configs" / "paper" / "study.yaml"
DEMO = REPO / "configs" / "study-demo.yaml"


# Small models on a shared 2-core machine: one torch thread avoids oversubscription.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def offline_hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """Hub downloads fail the same way everywhere (CI may have internet; this machine has not)."""
    mirror = (tmp_path / "no-mirror").as_uri()
    monkeypatch.setenv("LANDSCAPE_WEIGHTS_MIRROR", mirror)
    return mirror


def _write(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _study(**over: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"name": "t", "data": "synth", "grid": {"optim.name": ["sgd", "adam"]}}
    data.update(over)
    return data


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("content", "path"),
    [
        (_study(evaluate={"latncy": True}), "evaluate.latncy"),
        (_study(sedes=[0]), "sedes"),
        (_study(base={"optim": {"lrr": 0.1}}), "base.optim.lrr"),
        (_study(grid={"optim.lrr": [0.1]}), "grid.optim.lrr"),
        (_study(grid={"optim.name": ["sgd", "sgdd"]}), "grid.optim.name[1]"),
        (_study(runs=[{"name": "a", "polcy": "all"}]), "runs.0.polcy"),
        (_study(runs=[{"name": "a", "tiny": "maybe"}]), "runs.0.tiny"),
        (_study(base={"data": "elsewhere"}), "base.data"),
        (_study(grid={}), "no runs"),
        (_study(grid={"optim.name": []}), "empty list"),
        (_study(runs=[{"name": "a", "optim": {"name": "sgd"}}]), "runs.0.optim.name"),
    ],
)
def test_bad_study_files_are_one_line_errors_naming_the_key(
    tmp_path: Path, content: dict[str, Any], path: str
) -> None:
    file = _write(tmp_path / "study.yaml", content)
    with pytest.raises(ConfigError) as err:
        load_study(file)
    message = str(err.value)
    assert path in message
    assert "\n" not in message
    assert str(file) in message


def test_missing_data_is_a_user_error(tmp_path: Path) -> None:
    file = _write(tmp_path / "study.yaml", _study(data="no/such/folder"))
    study = load_study(file)
    with pytest.raises(UserError, match="dataset not found"):
        run_study(study, tmp_path / "out", study_file=file)


# --------------------------------------------------------------------------- expansion


def test_grid_times_runs_times_sizes_times_seeds(tmp_path: Path) -> None:
    study = StudyConfig(
        name="x",
        data="data",
        base={"epochs": 3, "backbone": "tiny_cnn", "weights": "none"},
        grid={"optim.name": ["sgd", "adam"], "policy": ["all", "deepest:1"]},
        runs=[
            {"name": "plain"},
            {"name": "aug", "augmentation": "paper", "sizes": [5, None], "note": "why"},
        ],
        seeds=[0, 1],
    )
    plans = plan_runs(study, tmp_path, tmp_path / "data")
    # plain: 4 grid points × 2 seeds; aug: 4 × 2 sizes × 2 seeds
    assert len(plans) == 8 + 16
    names = sorted({p.setting for p in plans})
    assert "plain-sgd-all" in names and "plain-adam-deepest_1" in names
    assert "aug-sgd-all-n5" in names and "aug-adam-all-nall" in names
    aug = next(p for p in plans if p.setting == "aug-adam-all-n5" and p.seed == 1)
    assert aug.config.optim.name == "adam" and aug.config.augmentation == "paper"
    assert aug.config.max_per_class == 5 and aug.config.epochs == 3 and aug.size == 5
    assert aug.group == "aug-adam-all" and aug.note == "why"
    assert aug.overrides == {"augmentation": "paper", "optim.name": "adam", "policy": "all"}
    assert re.fullmatch(r"aug-adam-all-n5-s1-[0-9a-f]{8}", aug.run_dir.name)
    assert aug.run_dir.parent == (tmp_path / "runs").resolve()
    # Stable ids: same config → same hash; another seed → another hash.
    again = plan_runs(study, tmp_path, tmp_path / "data")
    assert [p.run_id for p in plans] == [p.run_id for p in again]
    assert len({p.run_id for p in plans}) == len(plans)


def test_dotted_keys_nest_and_flatten_back() -> None:
    flat = {"optim.name": "sgd", "optim.lr": 0.1, "head": {"dropout": 0.2}, "epochs": 3}
    nested = nest_keys(flat)
    assert nested == {"optim": {"name": "sgd", "lr": 0.1}, "head": {"dropout": 0.2}, "epochs": 3}
    assert flatten_keys(nested) == {
        "optim.name": "sgd",
        "optim.lr": 0.1,
        "head.dropout": 0.2,
        "epochs": 3,
    }
    # A nested mapping under a dotted key merges with what the dots already built.
    assert nest_keys({"optim.lr": 0.1, "optim": {"name": "adam"}}) == {
        "optim": {"lr": 0.1, "name": "adam"}
    }
    assert flatten_keys({"fine_tune": {}}) == {"fine_tune": {}}


def test_config_hash_ignores_where_and_how_a_run_is_shown(tmp_path: Path) -> None:
    study = StudyConfig(name="x", data="d", grid={"optim.lr": [0.1]})
    cfg = plan_runs(study, tmp_path, tmp_path / "d")[0].config
    moved = cfg.model_copy(update={"out": tmp_path / "elsewhere", "num_workers": 7})
    assert config_hash(moved) == config_hash(cfg)
    assert re.fullmatch(r"[0-9a-f]{8}", config_hash(cfg))
    assert config_hash(cfg.model_copy(update={"seed": 1})) != config_hash(cfg)


def test_tiny_shrinks_and_skips(tmp_path: Path) -> None:
    study = StudyConfig(
        name="x",
        data="synth",
        base={"epochs": 10, "fine_tune": {"head_epochs": 5, "unfreeze": "all"}},
        grid={"backbone": ["tiny_cnn", "resnet18"]},
        runs=[{"name": "a"}, {"name": "slow", "tiny": False, "batch_size": 8}],
        sizes=[50, None],
        seeds=[0, 1, 2],
        tiny={"seeds": [7], "sizes": [2], "skip": ["a-resnet18*"], "max_per_class": 3},
    )
    plans = plan_runs(study, tmp_path, tmp_path / "d", "tiny")
    assert [p.setting for p in plans] == ["a-tiny_cnn-n2"]
    cfg = plans[0].config
    assert plans[0].seed == 7 and cfg.epochs == 1 and cfg.max_per_class == 2
    assert cfg.fine_tune is not None and cfg.fine_tune.head_epochs == 1
    assert cfg.num_workers == 0 and cfg.progress is False
    full = plan_runs(study, tmp_path, tmp_path / "d", "full")
    assert len(full) == 2 * 2 * 2 * 3
    with pytest.raises(ConfigError, match="no run left"):
        plan_runs(
            study.model_copy(update={"tiny": study.tiny.model_copy(update={"skip": ["*"]})}),
            tmp_path,
            tmp_path / "d",
            "tiny",
        )


def test_relative_data_is_relative_to_the_study_file(tmp_path: Path) -> None:
    folder = tmp_path / "studies"
    folder.mkdir()
    file = _write(folder / "s.yaml", _study(data="../photos"))
    study = load_study(file)
    assert resolve_data(study, file, None) == (tmp_path / "photos").resolve()
    assert resolve_data(study, file, Path("other")) == Path("other")
    assert resolve_data(load_study(_write(folder / "t.yaml", _study())), file, None) == "synth"


def test_synth_data_is_generated_once(tmp_path: Path) -> None:
    path = prepare_data("synth", tmp_path, "tiny")
    assert path == (tmp_path / "data" / "synth-tiny").resolve()
    assert len(list(path.rglob("*.jpg"))) == 5 * 12
    stamp = (path / ".synth.json").stat().st_mtime_ns
    assert prepare_data("synth", tmp_path, "tiny") == path
    assert (path / ".synth.json").stat().st_mtime_ns == stamp


def test_shipped_study_files_are_valid(tmp_path: Path) -> None:
    for file in (PAPER, DEMO):
        study = load_study(file)
        assert plan_runs(study, tmp_path, tmp_path / "d", "full")
        assert plan_runs(study, tmp_path, tmp_path / "d", "tiny")
    paper = plan_runs(load_study(PAPER), tmp_path, tmp_path / "d", "full")
    backbones = {p.config.backbone for p in paper}
    assert backbones == {"vgg16", "resnet18", "alexnet", "mobilenet_v2", "efficientnet_lite0"}
    groups = {p.setting.split("-")[0] for p in paper}
    assert groups == {"untrained", "frozen", "paper", "finetune"}
    untrained = [p.config for p in paper if p.setting.startswith("untrained")]
    assert all(c.weights == "none" and c.policy == "all" for c in untrained)
    frozen = [p.config for p in paper if p.setting.startswith("frozen-")]
    assert {c.optim.name for c in frozen} == {"sgd", "adam"}
    assert all(c.head.kind == "mlp" and c.head.dropout == 0.3 for c in frozen)
    assert all(c.batch_size == 20 and c.optim.scheduler == "plateau" for c in frozen)
    assert {p.size for p in paper if p.setting.startswith("frozen-adam")} == {10, 20, 40, "all"}
    finetune = {p.config.fine_tune.unfreeze for p in paper if p.config.fine_tune}
    assert finetune == {"all", "deepest:1"}


# --------------------------------------------------------------------------- aggregation


def test_aggregate_mean_std_near_best_and_pareto(tmp_path: Path) -> None:
    study = StudyConfig(
        name="x", data="d", grid={"optim.lr": [0.1, 0.01, 0.001, 0.5]}, seeds=[0, 1]
    )
    plans = plan_runs(study, tmp_path, tmp_path)
    accs = {"0.1": (0.80, 0.90), "0.01": (0.82, 0.84), "0.001": (0.50, 0.52), "0.5": (None, None)}
    speed = {"0.1": 10.0, "0.01": 20.0, "0.001": 5.0, "0.5": 1.0}
    records = [fake_record(p, accs[p.setting][p.seed], speed[p.setting]) for p in plans]
    rows, varied = aggregate(records, plans)
    assert varied == ["backbone", "optim.lr"]
    by = {r.setting: r for r in rows}
    assert by["0.1"].accuracy_mean == pytest.approx(0.85)
    assert by["0.1"].accuracy_std == pytest.approx(0.0707, abs=1e-3)
    assert by["0.1"].best and not by["0.01"].best
    # 0.83 vs 0.85: within the best's seed std → "≈ best"; 0.51 is not.
    assert by["0.01"].near_best and not by["0.001"].near_best
    assert by["0.5"].status == "failed" and by["0.5"].errors == ["boom"]
    assert by["0.1"].pareto and by["0.001"].pareto and not by["0.01"].pareto
    assert by["0.1"].per_class_f1 == {"a": pytest.approx(0.85), "b": pytest.approx(0.85)}
    assert by["0.1"].params_total == 10 and by["0.1"].params_trainable == 2


def test_pareto_front() -> None:
    assert pareto_front([(1.0, 0.5), (2.0, 0.9), (3.0, 0.8), (0.5, 0.4)]) == [0, 1, 3]


# --------------------------------------------------------------------------- real runs


def test_effective_jobs_is_capped_by_runs_and_cores() -> None:
    assert effective_jobs(1, 10) == 1
    assert effective_jobs(64, 2) <= 2
    assert effective_jobs(64, 1000) <= (os.cpu_count() or 1)
    assert effective_jobs(3, 0) == 1


def test_execute_run_records_a_failing_run_instead_of_raising(tmp_path: Path) -> None:
    study = StudyConfig(
        name="x",
        data="d",
        base={"backbone": "no_such_net", "weights": "none", "epochs": 1},
        grid={"optim.name": ["sgd"]},
    )
    plan = plan_runs(study, tmp_path, tmp_path / "d")[0]
    record = execute_run(plan, EvaluateOptions())
    assert record["status"] == "failed" and record["run_id"] == plan.run_id
    assert "no_such_net" in record["error"] and "\n" not in record["error"]
    assert json.loads((plan.run_dir / "study-run.json").read_text()) == record
    assert "Traceback" in (plan.run_dir / "error.txt").read_text()


def test_no_progress_counts_nothing_and_accepts_advances() -> None:
    with no_progress("anything", 3) as advance:
        assert advance(1) is None
        assert advance(2) is None


def test_tiny_study_runs_records_failures_and_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = _write(
        tmp_path / "study.yaml",
        {
            "name": "smoke",
            "data": "synth",
            "base": {"backbone": "tiny_cnn", "weights": "none", "policy": "all", "epochs": 2},
            "runs": [
                {"name": "cnn", "batch_size": 8},
                {"name": "broken", "backbone": "no_such_net", "tiny": True},
            ],
            "grid": {"optim.name": ["sgd", "adam"]},
            "seeds": [0, 1],
            "tiny": {"epochs": 2, "max_per_class": 6},
        },
    )
    out = tmp_path / "out"
    study = load_study(file)
    seen: list[tuple[str, int]] = []

    def progress(description: str, total: int) -> Any:
        from contextlib import nullcontext

        seen.append((description, total))
        return nullcontext(lambda n=1: None)

    result = run_study(study, out, study_file=file, size="tiny", progress=progress)
    assert seen == [("study smoke", 8)]
    assert result.counts == {"runs": 8, "ok": 4, "failed": 4, "skipped": 0}
    rows = {r.setting: r for r in result.rows}
    assert set(rows) == {"cnn-sgd", "cnn-adam", "broken-sgd", "broken-adam"}
    cnn = rows["cnn-adam"]
    assert cnn.n_ok == 2 and cnn.accuracy_mean is not None and cnn.accuracy_std is not None
    assert cnn.latency_ms and cnn.latency_ms > 0 and cnn.images_per_s and cnn.params_total
    assert cnn.train_seconds and set(cnn.per_class_f1) == {
        "coast",
        "desert",
        "forest",
        "glacier",
        "mountain",
    }
    broken = rows["broken-sgd"]
    assert broken.status == "failed" and "no_such_net" in broken.errors[0]
    assert "\n" not in broken.errors[0]
    # Each run is a normal run directory plus its evaluation and record.
    for record in result.records:
        run_dir = Path(record["run_dir"])
        assert (run_dir / "study-run.json").is_file()
        if record["status"] == "ok":
            assert (run_dir / "bundle" / "bundle.json").is_file()
            assert (run_dir / "eval" / "metrics.json").is_file()
            assert record["history"] and "val_acc" in record["history"][-1]
    for name in ("results.csv", "results.md", "results.html", "results.json"):
        assert (out / name).is_file()
    for png in ("accuracy_vs_latency.png", "accuracy_vs_params.png", "learning_curves.png"):
        assert (out / png).stat().st_size > 1000
    html = (out / "results.html").read_text()
    assert "data:image/png;base64," in html and "sortable" in html
    assert not re.search(r"(src|href)=['\"]https?://", html), "the report must open offline"
    assert "no_such_net" in html
    md = (out / "results.md").read_text()
    assert "cnn-adam" in md and "Failed runs" in md and "±" in md
    payload = json.loads((out / "results.json").read_text())
    assert payload["counts"]["ok"] == 4 and len(payload["rows"]) == 4

    # Re-running skips the finished runs (no training) and retries the failed ones.
    import landscape.train.trainer as trainer

    calls: list[str] = []
    real_fit = trainer.fit

    def counting_fit(cfg: Any, **kw: Any) -> Any:
        calls.append(cfg.backbone)
        return real_fit(cfg, **kw)

    monkeypatch.setattr(trainer, "fit", counting_fit)
    again = run_study(study, out, study_file=file, size="tiny")
    assert again.counts == {"runs": 8, "ok": 4, "failed": 4, "skipped": 4}
    assert calls == ["no_such_net"] * 4
    assert [r.accuracy_mean for r in again.rows] == [r.accuracy_mean for r in result.rows]


def test_paper_study_tiny(tmp_path: Path, offline_hub: str) -> None:
    """configs/paper/study.yaml end to end at tiny size: the offline-weights backbone trains,
    the hub-weights runs are recorded as failed with the download error, the report is there."""
    study = load_study(PAPER)
    out = tmp_path / "paper"
    result = run_study(study, out, study_file=PAPER, size="tiny", jobs=2)
    by_setting = {r.setting: r for r in result.rows}
    lite = [r for r in result.rows if r.settings["backbone"] == "efficientnet_lite0"]
    assert {r.setting for r in lite} == {
        "untrained-efficientnet_lite0",
        "frozen-sgd-efficientnet_lite0",
        "frozen-adam-efficientnet_lite0-n1",
        "frozen-adam-efficientnet_lite0-n2",
        "paper-aug-efficientnet_lite0",
        "finetune-all-efficientnet_lite0",
        "finetune-deepest-efficientnet_lite0",
    }
    assert all(r.status == "ok" and r.accuracy_mean is not None for r in lite), [
        (r.setting, r.errors) for r in lite
    ]
    # Random-init runs need no download: they train for every backbone kept at tiny size.
    for name in ("resnet18", "mobilenet_v2"):
        assert by_setting[f"untrained-{name}"].status == "ok"
    # tiny.skip: training VGG16/AlexNet from scratch is for the full study only
    assert "untrained-vgg16" not in by_setting and "untrained-alexnet" not in by_setting
    hub = [r for r in result.rows if r.settings["weights"] == "hub (default)"]
    assert len(hub) == 4 * 6
    for row in hub:
        assert row.status == "failed"
        assert "cannot download" in row.errors[0] and "weights" in row.errors[0]
    for name in ("results.md", "results.html", "accuracy_vs_size.png", "learning_curves.png"):
        assert (out / name).is_file()
    md = (out / "results.md").read_text()
    assert "cannot download" in md and "frozen-adam-efficientnet_lite0-n2" in md


@pytest.mark.slow
@pytest.mark.timeout(6 * 3600)
def test_paper_study_full(tmp_path: Path, offline_hub: str) -> None:
    """The full paper grid on the full synthetic dataset (one seed to bound the time; the
    configured three seeds triple it)."""
    study = load_study(PAPER)
    result = run_study(study, tmp_path / "paper", study_file=PAPER, size="full", jobs=2, seeds=[0])
    ok = [r for r in result.rows if r.status == "ok"]
    assert {r.settings["backbone"] for r in ok} == {
        "vgg16",
        "resnet18",
        "alexnet",
        "mobilenet_v2",
        "efficientnet_lite0",
    }
    frozen = next(r for r in ok if r.setting == "frozen-adam-efficientnet_lite0-nall")
    assert frozen.accuracy_mean is not None and frozen.accuracy_mean > 0.6
    assert (tmp_path / "paper" / "accuracy_vs_size.png").is_file()

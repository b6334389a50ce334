"""Studies: a grid or list of training runs from one YAML file, run, resumed and compared.

A study file names a dataset, the settings every run shares (``base``), what varies (a ``grid``
of values crossed with each other, a list of named ``runs``, or both: every run is crossed with
the grid), training-set ``sizes`` and ``seeds``. :func:`plan_runs` expands it into
:class:`RunPlan` s, each with a stable id (a hash of its resolved :class:`TrainConfig`) and a
normal run directory ``OUT/runs/<setting>-s<seed>-<hash8>/``; :func:`run_study` trains (``fit``)
and evaluates (``evaluate_bundle`` on the run's own split) the ones not finished yet, in parallel
processes when asked, and records a failed run with its one-line error instead of stopping;
:func:`aggregate` folds seeds into mean ± std per setting. :mod:`.study_report` writes the tables
and plots.

Relative dataset paths in a study file are relative to the **study file's folder** (so a study
runs the same from any working directory); ``data: synth`` generates the built-in synthetic
dataset into ``OUT/data/``.
"""

from __future__ import annotations

import datetime as _dt
import fnmatch
import hashlib
import itertools
import json
import math
import os
import re
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from landscape.config import TrainConfig, format_validation_error, load_yaml, merge_dicts
from landscape.errors import ConfigError, UserError, WeightsError

from .evaluate import ProgressFactory

__all__ = [
    "EvaluateOptions",
    "RunEntry",
    "RunPlan",
    "SettingRow",
    "StudyConfig",
    "StudyResult",
    "TinyOptions",
    "aggregate",
    "effective_jobs",
    "execute_run",
    "load_study",
    "pareto_front",
    "plan_runs",
    "prepare_data",
    "resolve_data",
    "run_study",
]

StudySize = Literal["tiny", "full"]

#: ``data: synth`` → the built-in synthetic dataset at this (images per class, pixels) per size.
SYNTH_SPECS: dict[str, tuple[int, int]] = {"tiny": (12, 96), "full": (100, 224)}

#: Name of the per-run record written in each run directory.
RECORD_FILE = "study-run.json"

# Keys of a run entry that describe the entry itself; every other key is a TrainConfig override.
_ENTRY_KEYS = frozenset({"name", "note", "tiny", "sizes"})
# TrainConfig keys the study owns: they are never part of base/grid/runs.
_OWNED_KEYS = frozenset({"data", "out", "seed", "progress"})
# Keys that do not change what a run computes (left out of its hash and of "key settings").
_NOT_HASHED = frozenset({"out", "progress", "num_workers"})
_NAME_RE = r"^[A-Za-z0-9][A-Za-z0-9_.=+-]*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EvaluateOptions(_Strict):
    """How each finished run is evaluated (``evaluate_bundle`` on the run's ``split.csv``)."""

    split: Literal["test", "val", "train"] = "test"
    latency: bool = True
    latency_runs: int = Field(20, ge=1)
    latency_batches: int = Field(2, ge=1)
    batch_size: int = Field(32, ge=1)


class TinyOptions(_Strict):
    """How ``--size tiny`` shrinks the study: a smoke test of the whole grid in minutes.

    ``skip`` lists setting-name patterns (``fnmatch``, e.g. ``untrained-vgg16*``) left out of the
    tiny study because even one epoch of them is slow.
    """

    epochs: int = Field(1, ge=1)
    max_per_class: int = Field(4, ge=1)
    seeds: list[int] | None = Field(None, min_length=1)
    sizes: list[int | None] | None = Field(None, min_length=1)
    latency_runs: int = Field(3, ge=1)
    latency_batch_size: int = Field(8, ge=1)
    skip: list[str] = Field(default_factory=list)


class RunEntry(_Strict):
    """A named variant: TrainConfig overrides (dotted keys allowed) plus a few entry keys.

    ``tiny: false`` leaves the run out of ``--size tiny`` (too slow for a smoke test);
    ``sizes`` replaces the study's training-set sizes for this run; ``note`` says what the run
    reproduces (shown in the report).
    """

    name: str = Field(pattern=_NAME_RE)
    note: str | None = None
    tiny: bool = True
    sizes: list[int | None] | None = Field(None, min_length=1)
    overrides: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _split_overrides(cls, value: Any) -> Any:
        if not isinstance(value, dict) or "overrides" in value:
            return value
        entry = {k: v for k, v in value.items() if k in _ENTRY_KEYS}
        entry["overrides"] = {k: v for k, v in value.items() if k not in _ENTRY_KEYS}
        return entry


class StudyConfig(_Strict):
    """A study file. Unknown keys are errors naming their path (``evaluate.latncy: ...``)."""

    name: str = Field(pattern=_NAME_RE)
    description: str | None = None
    data: str
    base: dict[str, Any] = Field(default_factory=dict)
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    runs: list[RunEntry] = Field(default_factory=list)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    sizes: list[int | None] | None = Field(None, min_length=1)
    evaluate: EvaluateOptions = Field(default_factory=EvaluateOptions)
    tiny: TinyOptions = Field(default_factory=TinyOptions)

    @field_validator("grid")
    @classmethod
    def _grid_lists(cls, grid: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for key, values in grid.items():
            if not values:
                raise ValueError(f"grid key {key!r} has an empty list of values")
        return grid

    @field_validator("seeds", "sizes")
    @classmethod
    def _unique(cls, values: list[Any] | None) -> list[Any] | None:
        if values is not None and len(set(values)) != len(values):
            raise ValueError("values must be unique")
        return values

    @model_validator(mode="after")
    def _has_runs(self) -> StudyConfig:
        if not self.grid and not self.runs:
            raise ValueError("the study has no runs: give a non-empty `grid` and/or `runs`")
        names = [r.name for r in self.runs]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"run names must be unique (repeated: {', '.join(dupes)})")
        return self


@dataclass(frozen=True)
class RunPlan:
    """One training run of a study: a setting × a seed, with its resolved config.

    ``size`` is the training-set cap per class of a size sweep (``"all"`` for no cap), or None
    when the study sweeps no size.
    """

    setting: str
    group: str
    seed: int
    size: int | str | None
    config: TrainConfig
    run_id: str
    overrides: dict[str, Any]
    note: str | None = None

    @property
    def run_dir(self) -> Path:
        """The run directory (``config.out``)."""
        return Path(self.config.out)

    @property
    def cache_key(self) -> tuple[str, str] | None:
        """Runs that may write the same feature-cache entry share this key (never run at once).

        The feature cache is keyed by backbone + weights: two processes filling one entry at the
        same time would interleave their chunk files. Random-init backbones key per seed.
        """
        cfg = self.config
        frozen_stage = cfg.policy == "frozen" or cfg.fine_tune is not None
        plain = cfg.augmentation == "none" and cfg.mixup == 0 and cfg.cutmix == 0
        if cfg.weights == "none" or cfg.cache_features == "off" or not (frozen_stage and plain):
            return None
        return (cfg.backbone, str(cfg.weights))


@dataclass
class SettingRow:
    """One line of the comparison table: a setting aggregated over its seeds."""

    setting: str
    group: str
    size: int | str | None
    settings: dict[str, Any]
    note: str | None
    n_seeds: int
    n_ok: int
    accuracy_mean: float | None = None
    accuracy_std: float | None = None
    macro_f1_mean: float | None = None
    macro_f1_std: float | None = None
    per_class_f1: dict[str, float] = field(default_factory=dict)
    latency_ms: float | None = None
    e2e_latency_ms: float | None = None
    images_per_s: float | None = None
    latency_batch: int | None = None
    params_total: int | None = None
    params_trainable: int | None = None
    train_seconds: float | None = None
    n_train: float | None = None
    val_acc_mean: float | None = None
    errors: list[str] = field(default_factory=list)
    run_dirs: list[str] = field(default_factory=list)
    best: bool = False
    near_best: bool = False
    pareto: bool = False

    @property
    def status(self) -> str:
        """``ok``, ``failed`` or ``partial`` (some seeds failed)."""
        if self.n_ok == self.n_seeds:
            return "ok"
        return "failed" if self.n_ok == 0 else "partial"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``status`` included)."""
        from dataclasses import asdict

        return {**asdict(self), "status": self.status}


@dataclass
class StudyResult:
    """What :func:`run_study` did: every run's record and the aggregated rows."""

    name: str
    out: Path
    size: str
    data: Path
    records: list[dict[str, Any]]
    rows: list[SettingRow]
    varied: list[str]
    counts: dict[str, int]
    files: dict[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------- loading


def load_study(path: Path) -> StudyConfig:
    """Read and validate a study file; any problem is a one-line :class:`ConfigError`."""
    raw = load_yaml(Path(path))
    try:
        study = StudyConfig(**raw)
    except ValidationError as exc:
        raise ConfigError(
            format_validation_error(exc, str(path)), fix="see configs/study-demo.yaml for the keys"
        ) from exc
    _check_train_keys(study, str(path))
    return study


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    """``{"optim.name": "sgd"}`` → ``{"optim": {"name": "sgd"}}`` (mappings merged deeply)."""
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        parts = key.split(".")
        node = nested
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        leaf = parts[-1]
        if isinstance(value, dict) and isinstance(node.get(leaf), dict):
            node[leaf] = merge_dicts(node[leaf], _nest(value))
        else:
            node[leaf] = _nest(value) if isinstance(value, dict) else value
    return nested


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def _train_errors(overrides: dict[str, Any]) -> list[tuple[str, str]]:
    """(key path, message) for each problem of ``overrides`` as TrainConfig keys."""
    try:
        TrainConfig(**merge_dicts({"data": "."}, _nest(overrides)))
    except ValidationError as exc:
        return [(".".join(str(p) for p in e["loc"]) or "(root)", e["msg"]) for e in exc.errors()]
    return []


def _raise_errors(source: str, problems: list[tuple[str, str]]) -> None:
    if problems:
        raise ConfigError(
            f"{source}: " + "; ".join(f"{where}: {msg}" for where, msg in problems),
            fix="see `landscape train --help` for the keys",
        )


def _check_train_keys(study: StudyConfig, source: str) -> None:
    """Validate base, each grid value and each run's overrides on their own, so an error names
    the key's path in the study file (``base.optim.lrr``, ``grid.optim.name[1]``,
    ``runs.2.policy``)."""
    sections: list[tuple[str, dict[str, Any]]] = [("base", study.base)]
    sections += [(f"runs.{i}", r.overrides) for i, r in enumerate(study.runs)]
    sections += [("grid", {k: v[0]}) for k, v in study.grid.items()]
    for where, overrides in sections:
        owned = sorted(k for k in _flatten(_nest(overrides)) if k.split(".")[0] in _OWNED_KEYS)
        if owned:
            raise ConfigError(
                f"{source}: {where}.{owned[0]}: set by the study, not per run",
                fix="use the study's `data` and `seeds`, and --out",
            )
        _raise_errors(source, [(f"{where}.{loc}", msg) for loc, msg in _train_errors(overrides)])
    for key, values in study.grid.items():
        for i, value in enumerate(values):
            problems = _train_errors({key: value})
            _raise_errors(source, [(f"grid.{key}[{i}]", msg) for _, msg in problems])
    grid_keys = set(_flatten(_nest({k: v[0] for k, v in study.grid.items()})))
    for i, run in enumerate(study.runs):
        for key in _flatten(_nest(run.overrides)):
            clash = [g for g in grid_keys if g == key or g.startswith(key + ".")]
            clash += [g for g in grid_keys if key.startswith(g + ".")]
            if clash:
                raise ConfigError(
                    f"{source}: runs.{i}.{key}: also varied by grid.{clash[0]}",
                    fix="set a key either in a run or in the grid",
                )


# --------------------------------------------------------------------------- planning


def resolve_data(study: StudyConfig, study_file: Path | None, data: Path | None) -> Path | str:
    """The dataset: ``--data`` (relative to the cwd), else the file's ``data`` relative to the
    study file's folder; ``"synth"`` stays a marker for :func:`prepare_data`."""
    if data is not None:
        return Path(data)
    if study.data.strip().lower() == "synth":
        return "synth"
    path = Path(study.data).expanduser()
    if not path.is_absolute() and study_file is not None:
        path = (Path(study_file).resolve().parent / path).resolve()
    return path


def prepare_data(
    data: Path | str, out: Path, size: StudySize, *, log: Callable[[str], None] | None = None
) -> Path:
    """A usable dataset path: generate ``synth`` into ``OUT/data/synth-SIZE`` once, or check
    that the given path exists."""
    if data == "synth":
        from landscape.data.synth import SynthSpec, generate_dataset

        per_class, pixels = SYNTH_SPECS[size]
        target = Path(out) / "data" / f"synth-{size}"
        stamp = target / ".synth.json"
        spec = {"per_class": per_class, "size": pixels, "seed": 0}
        if not (stamp.is_file() and json.loads(stamp.read_text()) == spec):
            if log is not None:
                log(f"generating the synthetic dataset ({per_class}/class, {pixels} px) → {target}")
            generate_dataset(target, SynthSpec(per_class=per_class, size=pixels, seed=0))
            stamp.write_text(json.dumps(spec))
        return target.resolve()
    path = Path(data)
    if not path.exists():
        raise UserError("dataset not found", path=path, fix="check `data:` or pass --data DIR")
    return path.resolve()


def _label(value: Any) -> str:
    if isinstance(value, dict):
        text = "-".join(f"{k}{_label(v)}" for k, v in _flatten(value).items())
    elif isinstance(value, list):
        text = "x".join(_label(v) for v in value)
    elif value is None:
        text = "none"
    else:
        text = str(value)
    return re.sub(r"[^A-Za-z0-9_.=+-]+", "_", text).strip("_") or "x"


def _size_label(size: int | None) -> str:
    return "nall" if size is None else f"n{size}"


def _config_hash(cfg: TrainConfig) -> str:
    data = json.loads(cfg.model_dump_json())
    for key in _NOT_HASHED:
        data.pop(key, None)
    blob = json.dumps(data, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:8]


def _tiny_shrink(config: dict[str, Any], tiny: TinyOptions) -> dict[str, Any]:
    shrunk = dict(config)
    shrunk["epochs"] = min(int(shrunk.get("epochs", 10)), tiny.epochs)
    cap = shrunk.get("max_per_class")
    shrunk["max_per_class"] = tiny.max_per_class if cap is None else min(cap, tiny.max_per_class)
    # Worker processes cost more to start than a handful of images costs to decode.
    shrunk["num_workers"] = 0
    fine = shrunk.get("fine_tune")
    if isinstance(fine, dict):
        shrunk["fine_tune"] = {**fine, "head_epochs": min(fine.get("head_epochs", 2), tiny.epochs)}
    return shrunk


_UNSET = object()


def plan_runs(
    study: StudyConfig,
    out: Path,
    data: Path,
    size: StudySize = "full",
    *,
    seeds: Sequence[int] | None = None,
) -> list[RunPlan]:
    """Expand ``study`` into runs: (named runs or one) × grid product × sizes × seeds.

    ``size="tiny"`` keeps runs with ``tiny: true``, caps epochs and ``max_per_class`` and uses
    ``tiny.seeds``/``tiny.sizes`` when given. Runs whose resolved configs are identical are kept
    once (the first name wins).
    """
    tiny = size == "tiny"
    entries = study.runs or [RunEntry.model_construct(name="", overrides={})]
    keys = list(study.grid)
    combos = list(itertools.product(*(study.grid[k] for k in keys))) or [()]
    use_seeds = list(seeds) if seeds else (study.tiny.seeds if tiny and study.tiny.seeds else None)
    use_seeds = use_seeds or list(study.seeds)
    plans: list[RunPlan] = []
    seen: set[str] = set()
    for entry in entries:
        if tiny and not entry.tiny:
            continue
        unset: list[Any] = [_UNSET]
        sizes: list[Any] = list(entry.sizes or study.sizes or unset)
        if tiny and study.tiny.sizes and (entry.sizes or study.sizes):
            sizes = list(study.tiny.sizes)
        for combo in combos:
            grid_over = dict(zip(keys, combo, strict=True))
            overrides = {**entry.overrides, **grid_over}
            parts = [entry.name] if study.runs else []
            parts += [_label(v) for v in combo]
            group = "-".join(parts) or study.name
            for n in sizes:
                setting = group if n is _UNSET else f"{group}-{_size_label(n)}"
                if tiny and any(fnmatch.fnmatchcase(setting, pat) for pat in study.tiny.skip):
                    continue
                for seed in use_seeds:
                    config = merge_dicts(study.base, _nest(overrides))
                    if n is not _UNSET:
                        config["max_per_class"] = n
                    if tiny:
                        config = _tiny_shrink(config, study.tiny)
                    config.update({"data": str(data), "seed": seed, "progress": False})
                    try:
                        cfg = TrainConfig(**config)
                    except ValidationError as exc:
                        raise ConfigError(
                            format_validation_error(exc, f"{study.name}: run {setting}"),
                            fix="check the combination of base, grid and run keys",
                        ) from exc
                    run_id = _config_hash(cfg)
                    if run_id in seen:
                        continue
                    seen.add(run_id)
                    run_dir = Path(out) / "runs" / f"{setting}-s{seed}-{run_id}"
                    cfg = cfg.model_copy(update={"out": run_dir.resolve()})
                    plans.append(
                        RunPlan(
                            setting=setting,
                            group=group,
                            seed=seed,
                            size=None if n is _UNSET else ("all" if n is None else n),
                            config=cfg,
                            run_id=run_id,
                            overrides=_flatten(_nest(overrides)),
                            note=entry.note,
                        )
                    )
    if not plans:
        raise ConfigError(
            f"{study.name}: no run left to do at size {size}",
            fix="mark some runs `tiny: true` or use --size full" if tiny else None,
        )
    return plans


# --------------------------------------------------------------------------- running


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, UserError):
        text = str(exc)
    else:
        first = (str(exc).strip().splitlines() or [""])[0]
        text = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    return " ".join(text.split())[:500]


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    tmp.replace(path)


def _read_record(plan: RunPlan) -> dict[str, Any] | None:
    path = plan.run_dir / RECORD_FILE
    if not path.is_file():
        return None
    try:
        record: dict[str, Any] = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return record


def _finished(plan: RunPlan) -> dict[str, Any] | None:
    """The record of a run finished by an earlier invocation, else None."""
    record = _read_record(plan)
    if record is None or record.get("status") != "ok" or record.get("run_id") != plan.run_id:
        return None
    if not (plan.run_dir / "eval" / "metrics.json").is_file():
        return None
    return record


def _base_record(plan: RunPlan) -> dict[str, Any]:
    return {
        "run_id": plan.run_id,
        "setting": plan.setting,
        "group": plan.group,
        "seed": plan.seed,
        "size": plan.size,
        "note": plan.note,
        "overrides": plan.overrides,
        "run_dir": str(plan.run_dir),
        "config": json.loads(plan.config.model_dump_json()),
    }


def _eval_summary(result: dict[str, Any]) -> dict[str, Any]:
    latency = result.get("latency") or {}
    model = latency.get("model") or {}
    e2e = latency.get("end_to_end") or {}
    bulk = next((k for k in model if k != "batch_1"), None)
    return {
        "split": result["split"],
        "n_images": result["n_images"],
        "accuracy": result["accuracy"],
        "macro_f1": result["macro_f1"],
        "per_class_f1": {c: m["f1"] for c, m in result["per_class"].items()},
        "ece": result.get("ece"),
        "latency_ms": (model.get("batch_1") or {}).get("p50_ms"),
        "e2e_latency_ms": (e2e.get("batch_1") or {}).get("p50_ms"),
        "images_per_s": (model.get(bulk) or {}).get("images_per_s") if bulk else None,
        "latency_batch": int(bulk.split("_")[1]) if bulk else None,
        "latency_threads": latency.get("threads"),
        "latency_device": latency.get("device_name"),
        "busy_machine": latency.get("busy_machine"),
        "params": result.get("params"),
        "bundle_bytes": result.get("bundle_bytes"),
    }


# Remembered per process: a weights source that failed (offline hub, missing file) fails the
# same way for every run of that backbone, and building VGG16 first costs seconds each time.
_WEIGHTS_FAILURES: dict[tuple[str, str | None, str | None], str] = {}


def execute_run(plan: RunPlan, options: EvaluateOptions) -> dict[str, Any]:
    """Train (or resume) and evaluate one run; never raises for a failing run: the returned
    record has ``status`` ``ok`` or ``failed`` with a one-line ``error``."""
    from landscape.train.trainer import fit, read_history

    from .evaluate import evaluate_bundle

    record = _base_record(plan)
    started = time.perf_counter()
    run_dir = plan.run_dir
    weights_key = (plan.config.backbone, plan.config.weights, plan.config.weights_sha256)
    try:
        if weights_key in _WEIGHTS_FAILURES:
            raise WeightsError(_WEIGHTS_FAILURES[weights_key].rstrip("."))
        bundle = run_dir / "bundle"
        if (bundle / "bundle.json").is_file() and (run_dir / "metrics.json").is_file():
            train_metrics = json.loads((run_dir / "metrics.json").read_text())
            history = read_history(run_dir)
        else:
            try:
                result = fit(plan.config, resume_run=(run_dir / "state.json").is_file())
            except WeightsError as exc:
                _WEIGHTS_FAILURES[weights_key] = str(exc)
                raise
            train_metrics, history, bundle = result.metrics, result.history, result.bundle
        evaluated = evaluate_bundle(
            bundle,
            run_dir / "split.csv",
            options.split,
            run_dir / "eval",
            fit_temperature=False,
            latency=options.latency,
            latency_runs=options.latency_runs,
            latency_batches=options.latency_batches,
            batch_size=options.batch_size,
            gallery=False,
            explain=False,
        )
        record.update(
            status="ok",
            error=None,
            train=train_metrics,
            eval=_eval_summary(evaluated),
            history=history,
        )
    except Exception as exc:  # a study records any failing run and goes on
        record.update(status="failed", error=_one_line(exc), train=None, eval=None, history=[])
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "error.txt").write_text(traceback.format_exc())
    record["seconds"] = round(time.perf_counter() - started, 2)
    record["finished_at"] = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    run_dir.mkdir(parents=True, exist_ok=True)
    _write_json(run_dir / RECORD_FILE, record)
    return record


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    os.environ.setdefault("MPLBACKEND", "Agg")


def _cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def effective_jobs(jobs: int, n_runs: int) -> int:
    """Parallel processes there is room for: ≤ cores, ≤ runs, ≥ 2.5 GB of free memory each."""
    try:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        available = 8 << 30
    by_memory = max(1, int(available // (2.5 * (1 << 30))))
    return max(1, min(jobs, _cores(), n_runs, by_memory))


RecordFn = Callable[[dict[str, Any]], None]


def _run_serial(plans: Sequence[RunPlan], options: EvaluateOptions, done: RecordFn) -> None:
    for plan in plans:
        done(execute_run(plan, options))


def _run_parallel(
    plans: Sequence[RunPlan], options: EvaluateOptions, jobs: int, done: RecordFn
) -> None:
    import multiprocessing

    threads = max(1, _cores() // jobs)
    pending = list(plans)
    running: dict[Future[dict[str, Any]], RunPlan] = {}
    busy: set[tuple[str, str]] = set()
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        max_workers=jobs, mp_context=context, initializer=_init_worker, initargs=(threads,)
    ) as pool:
        while pending or running:
            while len(running) < jobs:
                # Runs filling the same feature-cache entry never overlap (see RunPlan.cache_key).
                pick = next(
                    (p for p in pending if p.cache_key is None or p.cache_key not in busy), None
                )
                if pick is None:
                    break
                pending.remove(pick)
                if pick.cache_key is not None:
                    busy.add(pick.cache_key)
                running[pool.submit(execute_run, pick, options)] = pick
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                plan = running.pop(future)
                if plan.cache_key is not None:
                    busy.discard(plan.cache_key)
                try:
                    record = future.result()
                except Exception as exc:  # the worker process itself died
                    record = {
                        **_base_record(plan),
                        "status": "failed",
                        "error": _one_line(exc),
                        "train": None,
                        "eval": None,
                        "history": [],
                    }
                done(record)


def run_study(
    study: StudyConfig,
    out: Path,
    *,
    study_file: Path | None = None,
    data: Path | None = None,
    size: StudySize = "full",
    jobs: int = 1,
    seeds: Sequence[int] | None = None,
    progress: ProgressFactory | None = None,
    log: Callable[[str], None] | None = None,
) -> StudyResult:
    """Run every unfinished run of ``study`` into ``out`` and write the study report.

    Finished runs (record ``ok`` and evaluation present, same config hash) are skipped; failed
    runs are retried. ``jobs > 1`` runs that many spawned processes (capped by cores and free
    memory), each with ``cores // jobs`` torch threads.
    """
    from .study_report import write_study_report

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    source = resolve_data(study, study_file, data)
    dataset = prepare_data(source, out, size, log=log)
    options = study.evaluate
    if size == "tiny":
        options = options.model_copy(
            update={
                "latency_runs": study.tiny.latency_runs,
                "latency_batches": 1,
                "batch_size": study.tiny.latency_batch_size,
            }
        )
    plans = plan_runs(study, out, dataset, size, seeds=seeds)
    _WEIGHTS_FAILURES.clear()  # a new call may have a mirror or a network the last one lacked
    records: dict[str, dict[str, Any]] = {}
    todo: list[RunPlan] = []
    for plan in plans:
        previous = _finished(plan)
        if previous is not None:
            records[plan.run_id] = {**previous, "skipped": True}
        else:
            todo.append(plan)
    n_jobs = effective_jobs(jobs, len(todo)) if todo else 1
    if log is not None:
        skipped = len(plans) - len(todo)
        log(
            f"{len(plans)} run(s): {skipped} already finished, {len(todo)} to do"
            + (f", {n_jobs} in parallel" if n_jobs > 1 else "")
            + (f" (asked for {jobs})" if n_jobs < jobs and len(todo) >= jobs else "")
        )
    factory = progress or _quiet
    with factory(f"study {study.name}", len(todo)) as advance:

        def done(record: dict[str, Any]) -> None:
            records[record["run_id"]] = record
            advance(1)

        if n_jobs > 1:
            _run_parallel(todo, options, n_jobs, done)
        else:
            _run_serial(todo, options, done)
    ordered = [records[p.run_id] for p in plans]
    rows, varied = aggregate(ordered, plans)
    counts = {
        "runs": len(ordered),
        "ok": sum(r["status"] == "ok" for r in ordered),
        "failed": sum(r["status"] != "ok" for r in ordered),
        "skipped": sum(bool(r.get("skipped")) for r in ordered),
    }
    result = StudyResult(
        name=study.name,
        out=out,
        size=size,
        data=dataset,
        records=ordered,
        rows=rows,
        varied=varied,
        counts=counts,
    )
    result.files = write_study_report(result, study)
    return result


def _quiet(description: str, total: int) -> Any:
    from contextlib import nullcontext

    def advance(n: int = 1) -> None:
        return None

    return nullcontext(advance)


# --------------------------------------------------------------------------- aggregation


def _mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    var = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return mean, math.sqrt(var)


def _mean(values: Iterable[float | None]) -> float | None:
    kept = [float(v) for v in values if v is not None]
    return sum(kept) / len(kept) if kept else None


def _display(key: str, value: Any, config: dict[str, Any]) -> Any:
    fine = config.get("fine_tune")
    if key == "policy" and fine:
        return f"frozen ({fine['head_epochs']} ep) → {fine['unfreeze']}"
    if key == "weights" and value is None:
        try:
            from landscape.models.registry import get_backbone_info

            return f"{get_backbone_info(config['backbone']).default_weights} (default)"
        except UserError:
            return "default"
    return value


def _varied_keys(configs: Sequence[dict[str, Any]]) -> list[str]:
    flats = [_flatten(c) for c in configs]
    keys: list[str] = []
    for flat in flats:
        keys.extend(k for k in flat if k not in keys)
    skip = {"data", "seed", *_NOT_HASHED}
    varied = [
        k
        for k in keys
        if k.split(".")[0] not in skip
        and len({json.dumps(f.get(k), default=str) for f in flats}) > 1
    ]
    # A fine_tune schedule is shown in the policy column (``frozen (2 ep) → deepest:1``).
    if any(k.startswith("fine_tune") for k in varied) and "policy" not in varied:
        varied.insert(0, "policy")
    varied = [k for k in varied if not k.startswith("fine_tune")]
    return ["backbone", *[k for k in varied if k != "backbone"]]


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both axes (lower x, higher y)."""
    front = []
    for i, (x, y) in enumerate(points):
        dominated = any(
            (x2 <= x and y2 >= y) and (x2 < x or y2 > y)
            for j, (x2, y2) in enumerate(points)
            if j != i
        )
        if not dominated:
            front.append(i)
    return front


def aggregate(
    records: Sequence[dict[str, Any]], plans: Sequence[RunPlan]
) -> tuple[list[SettingRow], list[str]]:
    """Fold seeds into one :class:`SettingRow` per setting (in plan order) and flag the best.

    ``near_best`` marks a setting whose mean accuracy is within the best setting's seed std
    of the best (the difference is smaller than the seed noise). ``pareto`` marks settings no
    other beats on both accuracy and batch-1 latency.
    """
    by_setting: dict[str, list[tuple[RunPlan, dict[str, Any]]]] = {}
    for plan, record in zip(plans, records, strict=True):
        by_setting.setdefault(plan.setting, []).append((plan, record))
    first_configs = [
        json.loads(items[0][0].config.model_dump_json()) for items in by_setting.values()
    ]
    varied = _varied_keys(first_configs)
    rows: list[SettingRow] = []
    for (name, items), config in zip(by_setting.items(), first_configs, strict=True):
        plan0 = items[0][0]
        flat = _flatten(config)
        ok = [r for _, r in items if r["status"] == "ok" and r.get("eval")]
        evals = [r["eval"] for r in ok]
        acc_mean, acc_std = _mean_std([e["accuracy"] for e in evals])
        f1_mean, f1_std = _mean_std([e["macro_f1"] for e in evals])
        classes = list(evals[0]["per_class_f1"]) if evals else []
        params = next((e.get("params") for e in evals if e.get("params")), None) or {}
        train_params = next(((r.get("train") or {}).get("params") for r in ok), None) or {}
        rows.append(
            SettingRow(
                setting=name,
                group=plan0.group,
                size=plan0.size,
                settings={k: _display(k, flat.get(k), config) for k in varied},
                note=plan0.note,
                n_seeds=len(items),
                n_ok=len(ok),
                accuracy_mean=acc_mean,
                accuracy_std=acc_std,
                macro_f1_mean=f1_mean,
                macro_f1_std=f1_std,
                per_class_f1={
                    c: v
                    for c in classes
                    if (v := _mean(e["per_class_f1"].get(c) for e in evals)) is not None
                },
                latency_ms=_mean(e.get("latency_ms") for e in evals),
                e2e_latency_ms=_mean(e.get("e2e_latency_ms") for e in evals),
                images_per_s=_mean(e.get("images_per_s") for e in evals),
                latency_batch=next(
                    (e["latency_batch"] for e in evals if e.get("latency_batch")), None
                ),
                params_total=params.get("total") or train_params.get("total"),
                params_trainable=train_params.get("trainable", params.get("trainable")),
                train_seconds=_mean((r.get("train") or {}).get("train_seconds") for r in ok),
                n_train=_mean((r.get("train") or {}).get("n_train") for r in ok),
                val_acc_mean=_mean((r.get("train") or {}).get("val_acc") for r in ok),
                errors=sorted({r["error"] for _, r in items if r.get("error")}),
                run_dirs=[r["run_dir"] for _, r in items],
            )
        )
    scored = [r for r in rows if r.accuracy_mean is not None]
    if scored:
        best = max(scored, key=lambda r: (r.accuracy_mean or 0.0, -(r.latency_ms or 0.0)))
        best.best = True
        noise = best.accuracy_std or 0.0
        for row in scored:
            gap = abs((best.accuracy_mean or 0.0) - (row.accuracy_mean or 0.0))
            row.near_best = row is not best and gap < noise
        timed = [r for r in scored if r.latency_ms is not None]
        points = [(r.latency_ms or 0.0, r.accuracy_mean or 0.0) for r in timed]
        for i in pareto_front(points):
            timed[i].pareto = True
    return rows, varied

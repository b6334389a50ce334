"""Running a study: train and evaluate each planned run, skipping finished ones.

:func:`run_study` trains (``fit``) and evaluates (``evaluate_bundle`` on the run's own split)
the runs not finished yet, in parallel processes when asked, records a failed run with its
one-line error instead of stopping, folds seeds with :func:`~.aggregate.aggregate` and writes
the report with :func:`~.study_report.write_study_report`.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import time
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

from landscape.errors import UserError, WeightsError

from .aggregate import StudyResult, aggregate
from .plan import RunPlan, plan_runs, prepare_data, resolve_data
from .progress import ProgressFactory, no_progress
from .spec import EvaluateOptions, StudyConfig, StudySize
from .study_report import write_study_report

__all__ = ["RECORD_FILE", "effective_jobs", "execute_run", "run_study"]

#: Name of the per-run record written in each run directory.
RECORD_FILE = "study-run.json"


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
    from landscape.evaluation.evaluate import evaluate_bundle
    from landscape.train.trainer import fit, read_history

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
    factory = progress or no_progress
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

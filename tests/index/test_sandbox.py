"""The sandbox against real hostile workers: hangs, segfaults, exits, memory bombs, kills.

Every target is a real module-level function (tests/index/_sandbox_targets.py) run in real
worker processes; deaths are real signals and the clean-up checks look at /proc.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import multiprocessing
import os
import resource
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from landscape.errors import UserError
from landscape.index.sandbox import Outcome, Sandbox, SandboxError
from tests.index import _sandbox_targets as targets

REPO = Path(__file__).resolve().parents[2]
METHODS = ["forkserver", "spawn"]


def _gone(pid: int, *, zombie_ok: bool = False) -> bool:
    """True when ``pid`` no longer exists (or, with ``zombie_ok``, is a zombie: no memory, no
    code running, only waiting for a parent that is not ours to reap it)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return zombie_ok and "\nState:\tZ" in status


def _wait_until(predicate: Any, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def _run_all(sandbox: Sandbox, fn: Any, items: list[Any], **kw: Any) -> list[tuple[Any, Outcome]]:
    return list(sandbox.map_unordered(fn, items, **kw))


# -- Outcome and construction ---------------------------------------------------------------------


def test_outcome_is_a_frozen_record() -> None:
    outcome = Outcome(ok=True, value=4, error=None, kind="ok", seconds=0.1)
    assert (outcome.ok, outcome.value, outcome.error, outcome.kind) == (True, 4, None, "ok")
    with pytest.raises(dataclasses.FrozenInstanceError):
        outcome.value = 5  # type: ignore[misc]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"workers": -1},
        {"timeout": 0},
        {"memory_mb": 0},
        {"max_tasks_per_worker": 0},
        {"start_method": "fork"},
    ],
)
def test_invalid_settings_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        Sandbox(**kwargs)


# -- one behaviour at a time ----------------------------------------------------------------------


def test_returns_values() -> None:
    with Sandbox(workers=2) as sandbox:
        results = _run_all(sandbox, targets.square, list(range(10)))
    assert sorted((item, o.value) for item, o in results) == [(i, i * i) for i in range(10)]
    assert all(o.ok and o.kind == "ok" and o.error is None and o.seconds >= 0 for _, o in results)


def test_an_exception_is_an_error_on_one_line() -> None:
    with Sandbox(workers=1) as sandbox:
        [(_, outcome)] = _run_all(sandbox, targets.raise_value_error, ["x"])
    assert not outcome.ok and outcome.value is None
    assert outcome.kind == "error"
    assert outcome.error == "ValueError: bad value 'x' second line"


def test_a_user_error_keeps_its_own_message() -> None:
    with Sandbox(workers=1) as sandbox:
        [(_, outcome)] = _run_all(sandbox, targets.raise_user_error, ["cat.jpg"])
    assert (outcome.kind, outcome.error) == ("error", "cat.jpg: not an image.")


def test_a_hang_costs_the_timeout_not_the_sleep() -> None:
    with Sandbox(workers=1, timeout=0.5) as sandbox:
        list(sandbox.map_unordered(targets.square, [0]))  # worker started and warm
        started = time.monotonic()
        [(_, outcome)] = _run_all(sandbox, targets.sleep_for, [30.0])
        elapsed = time.monotonic() - started
        # The replacement worker serves the next item.
        [(_, after)] = _run_all(sandbox, targets.square, [3])
    assert outcome.kind == "timeout" and not outcome.ok
    assert "timed out after 0.5 s" in (outcome.error or "")
    assert 0.5 <= outcome.seconds < 2.0
    assert elapsed < 3.0
    assert after.ok and after.value == 9


def test_timeout_for_gives_each_item_its_own_deadline() -> None:
    short, long_, unknown = ("sleep", 0.4), ("sleep", 0.4), ("sleep", 0.4)

    def timeout_for(item: tuple[str, float]) -> float:
        if item is unknown:
            raise RuntimeError("cannot probe the duration")  # falls back to the default
        return 0.1 if item is short else 5.0

    with Sandbox(workers=3, timeout=5.0) as sandbox:
        results = _run_all(
            sandbox, targets.behave, [short, long_, unknown], timeout_for=timeout_for
        )
    kinds = {id(item): outcome.kind for item, outcome in results}
    assert kinds == {id(short): "timeout", id(long_): "ok", id(unknown): "ok"}


@pytest.mark.parametrize(
    ("fn", "method", "message"),
    [
        (targets.segfault, "forkserver", "worker died: killed by SIGSEGV (signal 11)"),
        (targets.segfault, "spawn", "worker died: killed by SIGSEGV (signal 11)"),
        (targets.sigkill_self, "forkserver", "killed by SIGKILL (signal 9) (the kernel's OOM"),
        (targets.exit_3, "forkserver", "worker died: exited with code 3"),
    ],
)
def test_a_dead_worker_is_a_crash_naming_the_cause(fn: Any, method: str, message: str) -> None:
    with Sandbox(workers=1, start_method=method) as sandbox:  # type: ignore[arg-type]
        [(_, outcome)] = _run_all(sandbox, fn, [None])
        [(_, after)] = _run_all(sandbox, targets.square, [4])  # served by the replacement
    assert outcome.kind == "crash" and not outcome.ok
    assert message in (outcome.error or "")
    assert after.ok and after.value == 16


@pytest.mark.parametrize(
    ("fn", "cap", "message"),
    [
        (targets.allocate_bytes, 512, "MemoryError"),
        (targets.allocate_numpy, 512, "MemoryError: Unable to allocate 4.00 GiB"),
        (targets.allocate_pillow, 512, "MemoryError"),
        # torch's own libraries need ~0.6 GiB of data segment just to import
        (targets.allocate_torch, 2048, "can't allocate memory"),
    ],
)
def test_an_allocation_beyond_the_cap_is_memory(fn: Any, cap: int, message: str) -> None:
    # spawn: a fresh interpreter, whatever this process's forkserver already preloaded (the
    # index pipeline preloads torch, whose ~0.6 GiB would count against a 512 MB cap).
    with Sandbox(workers=1, memory_mb=cap, start_method="spawn") as sandbox:
        # The cap leaves room for honest work (first: a bomb retires its worker, and torch's
        # import in a fresh one costs seconds).
        [(_, fits)] = _run_all(sandbox, fn, [0.1])
        [(_, bomb)] = _run_all(sandbox, fn, [4.0])
    assert bomb.kind == "memory" and not bomb.ok, bomb
    assert message in (bomb.error or "") and f"memory cap {cap} MB" in (bomb.error or "")
    assert fits.ok and abs(fits.value - 0.1 * (1 << 30)) < 1 << 20


@pytest.mark.parametrize(
    ("memory_mb", "expected"), [(512, 512 << 20), (None, resource.RLIM_INFINITY)]
)
def test_the_cap_is_the_workers_data_limit(memory_mb: int | None, expected: int) -> None:
    with Sandbox(workers=1, memory_mb=memory_mb) as sandbox:
        [(_, outcome)] = _run_all(sandbox, targets.data_limit, [None])
    assert outcome.value == (expected, expected)


def test_an_unpicklable_function_or_result_costs_that_item_only() -> None:
    with Sandbox(workers=1) as sandbox:
        [(_, fn_outcome)] = _run_all(sandbox, lambda x: x, [1])
        [(_, result_outcome)] = _run_all(sandbox, targets.unpicklable_result, [1])
        [(_, after)] = _run_all(sandbox, targets.square, [5])
    assert fn_outcome.kind == "error" and "cannot send item to worker" in (fn_outcome.error or "")
    assert result_outcome.kind == "error"
    assert "cannot send result" in (result_outcome.error or "")
    assert after.ok and after.value == 25


# -- batches --------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_a_mixed_batch_survives_its_bad_items(method: str) -> None:
    bad = {
        3: (("raise", 1), "error", "ValueError"),
        11: (("sleep", 30.0), "timeout", "timed out"),
        19: (("segfault", None), "crash", "SIGSEGV"),
        27: (("exit", None), "crash", "code 3"),
        35: (("allocate", 4.0), "memory", "MemoryError"),
    }
    items = [bad[i][0] if i in bad else ("square", i) for i in range(40)]
    expected = {id(bad[i][0]): bad[i][1:] for i in bad}
    started = time.monotonic()
    with Sandbox(workers=2, timeout=1.0, memory_mb=512, start_method=method) as sandbox:  # type: ignore[arg-type]
        results = _run_all(sandbox, targets.behave, items)
    assert time.monotonic() - started < 15
    assert len(results) == 40
    assert sorted(id(item) for item, _ in results) == sorted(id(item) for item in items)
    for item, outcome in results:
        if id(item) in expected:
            kind, fragment = expected[id(item)]
            assert outcome.kind == kind and fragment in (outcome.error or ""), (item, outcome)
        else:
            assert outcome.ok and outcome.value == item[1] ** 2, (item, outcome)


def test_each_outcome_is_paired_with_its_own_item() -> None:
    # Longer sleeps first, so results come back in another order than the items went in.
    items = [("sleep", round(0.02 * (12 - i), 2)) for i in range(12)]
    with Sandbox(workers=3) as sandbox:
        results = _run_all(sandbox, targets.behave, items)
    assert [item[1] for item, _ in results] != [item[1] for item in items]
    originals = {id(item) for item in items}
    for item, outcome in results:
        assert id(item) in originals
        assert outcome.value == item[1]


@pytest.mark.timeout(30)
def test_an_endless_source_is_read_lazily_and_can_be_abandoned() -> None:
    consumed = 0

    def endless() -> Iterator[tuple[str, int]]:
        nonlocal consumed
        for i in itertools.count():
            consumed += 1
            yield ("square", i)

    with Sandbox(workers=2) as sandbox:
        first = list(itertools.islice(sandbox.map_unordered(targets.behave, endless()), 20))
        # No stale result of an abandoned item leaks into the next iteration.
        again = _run_all(sandbox, targets.behave, [("square", 100 + i) for i in range(6)])
    assert len(first) == 20
    assert consumed <= 20 + 2 * 2
    assert all(o.ok and o.value == item[1] ** 2 for item, o in first + again)


@pytest.mark.timeout(60)
def test_map_ahead_keeps_workers_busy_while_the_caller_is_slow() -> None:
    """A caller that stops every few outcomes for a slow step (a network, a transaction):
    in step, the workers idle during that step; ahead, they go on with the items read ahead."""
    items = [0.1] * 24  # 1.2 s of work on 2 workers

    def consume(outcomes: Iterator[tuple[float, Outcome[float]]]) -> tuple[float, int]:
        started, count = time.monotonic(), 0
        for _ in outcomes:
            count += 1
            if count % 6 == 0:
                time.sleep(0.4)  # 1.6 s of caller's work in all
        return time.monotonic() - started, count

    with Sandbox(workers=2) as sandbox:
        list(sandbox.map_unordered(targets.square, [0, 1]))  # workers started and warm
        in_step, n_step = consume(sandbox.map_unordered(targets.sleep_for, items))
        ahead, n_ahead = consume(sandbox.map_ahead(targets.sleep_for, items, window=24))
    assert n_step == n_ahead == 24
    # In step ≈ 1.6 + 1.2 − a little overlap; ahead ≈ the caller's 1.6 s plus the first items.
    assert ahead < in_step - 0.3, (ahead, in_step)


@pytest.mark.timeout(30)
def test_map_ahead_reads_items_on_the_callers_thread_within_the_window() -> None:
    import threading

    threads: set[str] = set()
    consumed = 0

    def source() -> Iterator[int]:
        nonlocal consumed
        for i in range(100):
            threads.add(threading.current_thread().name)
            consumed += 1
            yield i

    with Sandbox(workers=2) as sandbox:
        outcomes = sandbox.map_ahead(targets.square, source(), window=5)
        first = next(outcomes)
        time.sleep(0.3)
        assert consumed <= 5 + 1
        rest = list(outcomes)
    assert threads == {threading.current_thread().name}
    assert sorted(o.value for _, o in [first, *rest]) == [i * i for i in range(100)]


@pytest.mark.timeout(60)
def test_leaving_map_ahead_early_kills_hung_workers_at_once(tmp_path: Path) -> None:
    """A caller that stops (Ctrl+C, an error) does not wait for hung items' deadlines."""
    tasks = [("square", 1)] + [("record", (str(tmp_path), 600))] * 2
    with Sandbox(workers=2, timeout=300) as sandbox:
        outcomes = sandbox.map_ahead(targets.behave, tasks, window=4)
        _, first = next(outcomes)
        assert first.value == 1
        assert _wait_until(lambda: len(list(tmp_path.iterdir())) == 2, 20)
        started = time.monotonic()
        outcomes.close()
        assert time.monotonic() - started < 10
        pids = [int(p.name) for p in tmp_path.iterdir()]
        assert _wait_until(lambda: all(_gone(pid, zombie_ok=True) for pid in pids), 10)
        # The sandbox is still usable after an abandoned map_ahead.
        again = list(sandbox.map_ahead(targets.square, [2, 3], window=2))
    assert sorted(o.value for _, o in again) == [4, 9]


def test_map_ahead_raises_the_sandboxs_own_errors_on_the_callers_thread() -> None:
    with (
        Sandbox(workers=1, initializer=targets.failing_init) as sandbox,
        pytest.raises(SandboxError, match="model bundle exploded"),
    ):
        list(sandbox.map_ahead(targets.square, [1, 2], window=2))
    with Sandbox(workers=0) as inline:
        assert [o.value for _, o in inline.map_ahead(targets.square, [3], window=1)] == [9]
    with pytest.raises(ValueError, match="window"):
        next(Sandbox(workers=1).map_ahead(targets.square, [1], window=0))


def test_one_iteration_at_a_time() -> None:
    with Sandbox(workers=1) as sandbox:
        first = sandbox.map_unordered(targets.square, [1, 2])
        next(first)
        with pytest.raises(RuntimeError, match="one map_unordered at a time"):
            next(sandbox.map_unordered(targets.square, [3]))
        first.close()
        assert [o.value for _, o in _run_all(sandbox, targets.square, [3])] == [9]


# -- workers: initializer, recycling, start failures ----------------------------------------------


def test_the_initializer_runs_once_per_worker(tmp_path: Path) -> None:
    log = tmp_path / "init.log"
    with Sandbox(workers=2, initializer=targets.remember_init, initargs=(str(log), "loaded")) as sb:
        results = _run_all(sb, targets.init_value, list(range(12)))
    started = log.read_text().split()
    # 12 items, at most 2 initializations: once per worker, not per item (a worker still in its
    # initializer when the run ends is killed, so 1 is possible on a loaded machine).
    assert 1 <= len(started) == len(set(started)) <= 2
    assert {value for _, o in results for value in [o.value[1]]} == {"loaded"}
    assert {str(o.value[0]) for _, o in results} <= set(started)


def test_without_prestart_no_worker_starts_until_there_is_an_item(tmp_path: Path) -> None:
    log = tmp_path / "init.log"
    init = {"initializer": targets.remember_init, "initargs": (str(log), "loaded")}
    with Sandbox(workers=2, prestart=False, **init) as idle:  # type: ignore[arg-type]
        assert _run_all(idle, targets.square, []) == []
        time.sleep(0.3)
        assert not log.exists()
        assert [o.value for _, o in _run_all(idle, targets.square, [3])] == [9]
    assert 1 <= len(log.read_text().split()) <= 2
    eager_log = tmp_path / "eager.log"
    with Sandbox(workers=1, initializer=targets.remember_init, initargs=(str(eager_log), "x")):
        assert _wait_until(eager_log.exists, 10)  # started on entry, no item needed


def test_workers_are_replaced_after_max_tasks() -> None:
    with Sandbox(workers=1, max_tasks_per_worker=2) as sandbox:
        results = _run_all(sandbox, targets.pid_of, list(range(6)))
    assert len({o.value for _, o in results}) == 3


_PRELOAD = textwrap.dedent(
    """
    import sys
    from landscape.index.sandbox import Sandbox
    from tests.index import _sandbox_targets as targets

    if __name__ == "__main__":
        preload = tuple(sys.argv[1:])
        with Sandbox(workers=1, preload=preload) as sandbox:
            [(_, outcome)] = sandbox.map_unordered(targets.modules_loaded, [["colorsys"]])
        print(outcome.value)
    """
)


@pytest.mark.parametrize(("preload", "loaded"), [((), "[]"), (("colorsys",), "['colorsys']")])
def test_preloaded_modules_are_in_every_worker(
    preload: tuple[str, ...], loaded: str, tmp_path: Path
) -> None:
    # A fresh process: preload applies to the forkserver this process has not started yet.
    script = tmp_path / "preload.py"
    script.write_text(_PRELOAD)
    done = subprocess.run(
        [sys.executable, str(script), *preload],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == loaded


def test_a_failing_initializer_stops_the_run() -> None:
    with (
        Sandbox(workers=1, initializer=targets.failing_init) as sandbox,
        pytest.raises(SandboxError, match=r"RuntimeError: model bundle exploded .*capped at 2048"),
    ):
        _run_all(sandbox, targets.square, [1])


def test_an_initializer_user_error_stays_a_user_error() -> None:
    with (
        Sandbox(workers=1, initializer=targets.raise_user_error, initargs=("m.landscape",)) as sb,
        pytest.raises(UserError, match=r"m\.landscape: not an image"),
    ):
        _run_all(sb, targets.square, [1])


def test_a_closed_sandbox_refuses_work() -> None:
    sandbox = Sandbox(workers=1)
    sandbox.close()
    sandbox.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        sandbox.map_unordered(targets.square, [1])


def test_workers_zero_runs_in_process_without_limits(tmp_path: Path) -> None:
    log = tmp_path / "init.log"
    sandbox = Sandbox(
        workers=0, timeout=0.05, initializer=targets.remember_init, initargs=(str(log), "here")
    )
    with sandbox:
        values = _run_all(sandbox, targets.init_value, [1])
        slow = _run_all(sandbox, targets.sleep_for, [0.2])
        failed = _run_all(sandbox, targets.raise_user_error, ["x.png"])
    assert values[0][1].value == (os.getpid(), "here")
    assert log.read_text().split() == [str(os.getpid())]  # once, in this process
    assert slow[0][1].ok  # no timeout in-process
    assert (failed[0][1].kind, failed[0][1].error) == ("error", "x.png: not an image.")


# -- no orphans, no zombies -----------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_no_worker_outlives_close(method: str, tmp_path: Path) -> None:
    with Sandbox(
        workers=2,
        timeout=0.5,
        max_tasks_per_worker=2,
        start_method=method,  # type: ignore[arg-type]
    ) as sandbox:
        pids = {o.value for _, o in _run_all(sandbox, targets.pid_of, list(range(6)))}
        timed_out = tmp_path / "timed_out"
        timed_out.mkdir()
        _run_all(sandbox, targets.record_pid_then_sleep, [(str(timed_out), 30.0)])
        pids |= {int(p.name) for p in timed_out.iterdir()}
        # Leave the block with one worker busy on a hanging item, the iteration unfinished.
        busy = tmp_path / "busy"
        busy.mkdir()
        hanging = sandbox.map_unordered(
            targets.behave, [("record", (str(busy), 30.0)), ("square", 2)]
        )
        assert next(hanging)[1].value == 4
        assert _wait_until(lambda: any(busy.iterdir()), 10)
        pids |= {int(p.name) for p in busy.iterdir()}
    assert len(pids) >= 3  # 6 items at 2 per worker, then a killed one and a busy one
    assert [pid for pid in pids if not _gone(pid)] == []
    assert [p for p in multiprocessing.active_children() if p.name == "landscape-sandbox"] == []


_INTERRUPTED = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path
    from landscape.index.sandbox import Sandbox
    from tests.index import _sandbox_targets as targets

    if __name__ == "__main__":
        folder, method = sys.argv[1], sys.argv[2]
        interrupted = False
        try:
            with Sandbox(workers=2, timeout=60, start_method=method) as sandbox:
                print("started", flush=True)
                for _ in sandbox.map_unordered(
                    targets.record_pid_then_sleep, [(folder, 60.0)] * 4
                ):
                    pass
        except KeyboardInterrupt:
            interrupted = True
        pids = [int(p.name) for p in Path(folder).iterdir()]
        alive = [pid for pid in pids if os.path.exists(f"/proc/{pid}")]
        print(json.dumps({"interrupted": interrupted, "pids": pids, "alive": alive}))
    """
)


def _start_script(tmp_path: Path, method: str) -> tuple[subprocess.Popen[str], Path]:
    script, folder = tmp_path / "run.py", tmp_path / "pids"
    script.write_text(_INTERRUPTED)
    folder.mkdir()
    proc = subprocess.Popen(
        [sys.executable, str(script), str(folder), method],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal would give it
    )
    if not _wait_until(lambda: len(list(folder.iterdir())) == 2, 20):
        proc.kill()
        pytest.fail(f"workers never started: {proc.communicate()}")
    return proc, folder


@pytest.mark.parametrize("method", METHODS)
def test_ctrl_c_in_the_parent_leaves_no_worker(method: str, tmp_path: Path) -> None:
    proc, _ = _start_script(tmp_path, method)
    # Ctrl+C in a terminal reaches the whole process group, workers included.
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    report = json.loads(out.splitlines()[-1])
    assert report["interrupted"], err
    assert len(report["pids"]) == 2 and report["alive"] == []
    assert all(_gone(pid) for pid in report["pids"])


@pytest.mark.parametrize("method", METHODS)
def test_workers_die_with_a_killed_parent(method: str, tmp_path: Path) -> None:
    proc, folder = _start_script(tmp_path, method)
    pids = [int(p.name) for p in folder.iterdir()]
    proc.kill()  # SIGKILL: no clean-up code runs in the parent; the workers hang in sleep(60)
    proc.wait(timeout=10)
    assert _wait_until(lambda: all(_gone(pid, zombie_ok=True) for pid in pids), 10)

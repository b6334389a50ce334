"""Background jobs as rows, on SQLite and PostgreSQL: one running per kind, finished with
their outcome, settled when their process is gone."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from landscape.index.db import open_index, session_factory
from landscape.index.jobs import (
    JobConflictError,
    finish_job,
    job_dict,
    list_jobs,
    read_job,
    reap_stale,
    result_path,
    start_job,
    tail,
)
from landscape.index.schema import AuditEntry, Job


def _gone_pid() -> int:
    """The id of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_one_running_job_per_kind_then_finished(db_url: str, tmp_path: Path) -> None:
    engine = open_index(db_url)
    with session_factory(engine)() as s:
        first = start_job(s, "retrain", {"epochs": 1}, "ana")
        sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        first.pid = sleeper.pid
        log = tmp_path / f"{first.id}.log"
        log.write_text("starting\n[2/5] training on 40 files\n")
        first.log_path = str(log)
        s.commit()
        with pytest.raises(
            JobConflictError, match=r"a retrain job is already running \(job \d+, started by ana\)"
        ):
            start_job(s, "retrain", {}, "bob")
        other = start_job(s, "reclassify", {}, "bob")  # another kind may run beside it
        view = job_dict(first)
        assert view["state"] == "running"
        assert view["progress"] == {"step": 2, "steps": 5, "message": "training on 40 files"}
        assert "[2/5]" in view["log_tail"]
        finish_job(s, first.id, exit_code=0, error=None, result={"model_id": "m-1"})
        finish_job(s, other.id, exit_code=1, error="too few reviewed images", result=None)
        done = read_job(s, first.id)
        assert done is not None and done.state == "succeeded" and done.result == {"model_id": "m-1"}
        assert read_job(s, other.id).state == "failed"  # type: ignore[union-attr]
        assert [j.id for j in list_jobs(s)] == [other.id, first.id]
        assert start_job(s, "retrain", {}, "bob").state == "running"  # the lane is free again
        assert {a.action for a in s.query(AuditEntry)} == {"job.retrain", "job.reclassify"}
    sleeper.kill()
    sleeper.wait()
    engine.dispose()


def test_a_job_whose_process_is_gone_is_settled(db_url: str, tmp_path: Path) -> None:
    engine = open_index(db_url)
    with session_factory(engine)() as s:
        lost = start_job(s, "retrain", {}, "ana")
        lost.pid, lost.log_path = _gone_pid(), str(tmp_path / "1.log")
        s.commit()
        job = read_job(s, lost.id)
        assert job is not None and job.state == "failed"
        assert "ended without reporting" in (job.error or "")
        # A command that printed its result before the service went away succeeded.
        done = start_job(s, "retrain", {}, "ana")
        done.pid, done.log_path = _gone_pid(), str(tmp_path / "2.log")
        result_path(done.log_path).write_text(json.dumps({"model_id": "m-2"}))
        s.commit()
        assert reap_stale(s) == 1
        assert read_job(s, done.id).state == "succeeded"  # type: ignore[union-attr]
        assert read_job(s, done.id).result == {"model_id": "m-2"}  # type: ignore[union-attr]
        # Another machine's job is trusted as running.
        remote = start_job(s, "reclassify", {}, "ana")
        remote.host, remote.pid = f"not-{socket.gethostname()}", _gone_pid()
        s.commit()
        assert reap_stale(s) == 0 and s.get(Job, remote.id).state == "running"  # type: ignore[union-attr]
    engine.dispose()


def test_tail_reads_the_end_of_a_log(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    assert tail(log, 3) == "line 97\nline 98\nline 99"
    assert tail(tmp_path / "missing.log") == "" and tail(None) == ""

"""Background jobs as rows: started, watched, finished — and never stuck.

The service runs long work (``landscape retrain``, a reclassification) as a CLI process of its
own and records it here: who asked, the process id, its log, and at the end its exit code,
error line and result. One job of a kind runs at a time (a partial unique index, so the
database refuses a second even across processes). A job whose process is gone without a
finish being recorded (the service was restarted, the machine rebooted) is marked failed the
next time it is read or another job of its kind starts.
"""

from __future__ import annotations

import json
import os
import re
import socket
from datetime import UTC
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from landscape.errors import UserError

from .accounts import audit
from .schema import Job, utcnow

__all__ = [
    "JobConflictError",
    "finish_job",
    "job_dict",
    "list_jobs",
    "read_job",
    "read_result",
    "reap_stale",
    "result_path",
    "start_job",
    "tail",
]

_TAIL_LINES = 40
_START_GRACE_S = 60
_STEP = re.compile(r"\[(\d+)/(\d+)\]\s*(.*)")


class JobConflictError(UserError):
    """A job of the same kind is already running."""


def _alive(job: Job) -> bool:
    if job.host != socket.gethostname():
        return True  # another machine's process: trust the row
    if job.pid is None:
        # Between the row and the process start; a minute later the start never happened.
        created = job.created_at
        if created.tzinfo is None:
            created = created.replace(tzinfo=UTC)
        return (utcnow() - created).total_seconds() < _START_GRACE_S
    try:
        os.kill(job.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def tail(path: str | Path | None, lines: int = _TAIL_LINES) -> str:
    """The last ``lines`` lines of a log file ('' when there is none)."""
    if not path:
        return ""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            text = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def result_path(log_path: str | Path) -> Path:
    """Where a job's command writes its JSON result (beside its log)."""
    return Path(log_path).with_suffix(".json")


def read_result(log_path: str | Path | None) -> dict[str, Any] | None:
    """The JSON object a job's command left beside its log (None when there is none)."""
    if not log_path:
        return None
    try:
        value = json.loads(result_path(log_path).read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def reap_stale(session: Session, kind: str | None = None) -> int:
    """Settle running jobs whose process is gone: succeeded when the command left its JSON
    result beside its log, else failed; how many were."""
    query = select(Job).where(Job.state == "running")
    if kind is not None:
        query = query.where(Job.kind == kind)
    reaped = 0
    for job in session.scalars(query):
        if not _alive(job):
            job.finished_at = utcnow()
            job.log_tail = tail(job.log_path)
            job.result = read_result(job.log_path)
            if job.result is not None:
                # The command finished and printed its result; only the service that was
                # waiting for it is gone (restarted).
                job.state = "succeeded"
            else:
                job.state = "failed"
                job.error = "the job's process ended without reporting (was the service restarted?)"
            reaped += 1
    session.flush()
    return reaped


def start_job(session: Session, kind: str, args: dict[str, Any], user: str) -> Job:
    """Insert a running job (committed), or raise :class:`JobConflictError` naming the one
    already running."""
    reap_stale(session, kind)
    session.commit()
    job = Job(kind=kind, state="running", args=args, user_name=user, host=socket.gethostname())
    session.add(job)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        running = session.scalar(select(Job).where(Job.kind == kind, Job.state == "running"))
        who = f" (job {running.id}, started by {running.user_name})" if running else ""
        raise JobConflictError(
            f"a {kind} job is already running{who}; one runs at a time",
            fix="wait for it to finish (GET /api/v1/jobs/ID) and try again",
        ) from None
    audit(session, user, f"job.{kind}", str(job.id), args)
    session.commit()
    return job


def finish_job(
    session: Session,
    job_id: int,
    *,
    exit_code: int | None,
    error: str | None,
    result: dict[str, Any] | None,
) -> None:
    """Record the end of a job (committed)."""
    job = session.get(Job, job_id)
    if job is None:
        return
    job.state = "succeeded" if exit_code == 0 and error is None else "failed"
    job.exit_code = exit_code
    job.error = error
    job.result = result
    job.finished_at = utcnow()
    job.log_tail = tail(job.log_path)
    session.commit()


def _progress(log: str) -> dict[str, Any] | None:
    for line in reversed(log.splitlines()):
        if match := _STEP.search(line):
            return {"step": int(match[1]), "steps": int(match[2]), "message": match[3].strip()}
    return None


def job_dict(job: Job) -> dict[str, Any]:
    """JSON-ready form, with the live log tail and the last ``[i/n]`` step line of a running
    job."""
    log = tail(job.log_path) if job.state == "running" else (job.log_tail or "")
    return {
        "id": job.id,
        "kind": job.kind,
        "state": job.state,
        "args": job.args,
        "user": job.user_name,
        "created_at": job.created_at.isoformat() if job.created_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
        "exit_code": job.exit_code,
        "error": job.error,
        "progress": _progress(log),
        "log_tail": log,
        "result": job.result,
    }


def read_job(session: Session, job_id: int) -> Job | None:
    """A job, after marking it failed if its process is gone."""
    job = session.get(Job, job_id)
    if job is not None and job.state == "running" and not _alive(job):
        reap_stale(session, job.kind)
        session.commit()
    return job


def list_jobs(session: Session, limit: int = 20) -> list[Job]:
    """The newest jobs first."""
    reap_stale(session)
    session.commit()
    return list(session.scalars(select(Job).order_by(Job.id.desc()).limit(limit)))

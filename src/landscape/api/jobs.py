"""Run a CLI command as a background job of the service, recorded in the ``jobs`` table.

The service never imports training code: a retrain is ``python -m landscape retrain`` in a
process of its own (its own session, so a kill of the service does not kill it), with the
database URL and data directory in its environment (not on its command line, where other
users of the machine could read a password). A thread waits for the process and records the
exit code, the error line, the log tail and — from the JSON the command prints — the result.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from landscape.index.jobs import finish_job, job_dict, read_result, result_path, start_job, tail
from landscape.index.schema import Job

from .settings import ServiceSettings

__all__ = ["launch_job"]


def _error_line(code: int, log: Path) -> str | None:
    if code == 0:
        return None
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"the job's process was killed ({name}); nothing was changed"
    for line in reversed(tail(log, 200).splitlines()):
        if line.startswith("error:"):
            return line.removeprefix("error:").strip()
    return f"the command exited with code {code} (see the log)"


def _wait(
    sessions: sessionmaker[Session],
    job_id: int,
    proc: subprocess.Popen[bytes],
    log: Path,
) -> None:
    code = proc.wait()
    with sessions() as session:
        finish_job(
            session,
            job_id,
            exit_code=code,
            error=_error_line(code, log),
            result=read_result(log) if code == 0 else None,
        )


def _environment(settings: ServiceSettings) -> dict[str, str]:
    env = dict(os.environ)
    env["LANDSCAPE_DB"] = settings.database_url
    env["LANDSCAPE_HOME"] = str(settings.data_dir)
    env.pop("LANDSCAPE_DEBUG", None)  # one error line in the log, not a traceback
    return env


def launch_job(
    sessions: sessionmaker[Session],
    settings: ServiceSettings,
    kind: str,
    command: list[str],
    args: dict[str, Any],
    user: str,
) -> dict[str, Any]:
    """Record a running ``kind`` job, start ``landscape COMMAND…`` for it, watch it; the job
    as :func:`~landscape.index.jobs.job_dict` shows it.

    Raises :class:`~landscape.index.jobs.JobConflictError` when one of ``kind`` is running.
    """
    with sessions() as session:
        job = start_job(session, kind, args, user)
        job_id = job.id
    folder = settings.data_dir / "jobs"
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / f"{job_id}.log"
    out = result_path(log)
    try:
        with open(log, "wb") as log_fh, open(out, "wb") as out_fh:
            proc = subprocess.Popen(
                [sys.executable, "-m", "landscape", *command],
                stdin=subprocess.DEVNULL,
                stdout=out_fh,
                stderr=log_fh,
                env=_environment(settings),
                start_new_session=True,
            )
    except OSError as exc:
        with sessions() as session:
            finish_job(session, job_id, exit_code=None, error=f"cannot start: {exc}", result=None)
            return _view(session, job_id)
    with sessions() as session:
        found = session.get(Job, job_id)
        assert found is not None
        found.pid = proc.pid
        found.log_path = str(log)
        session.commit()
        view = job_dict(found)
    threading.Thread(
        target=_wait,
        args=(sessions, job_id, proc, log),
        daemon=True,
        name=f"job-{job_id}",
    ).start()
    return view


def _view(session: Session, job_id: int) -> dict[str, Any]:
    found = session.get(Job, job_id)
    assert found is not None
    return job_dict(found)

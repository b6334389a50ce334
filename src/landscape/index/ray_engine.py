"""The index's Ray Data engine: the same extract → classify → write pipeline, scaled out.

``landscape index --engine ray [--address ADDR]`` plans on the driver (the walk, and which
files changed, need the database), then streams the jobs through a Ray Data dataset:

1. ``map_batches(_Extract)`` in an actor pool: each actor owns a one-worker
   :class:`~landscape.index.sandbox.Sandbox`, so a hostile file that hangs or crashes a decoder
   costs that file only (a plain Ray task would die with it and fail the whole job);
2. ``map_batches(_Classify)`` in an actor pool (one model load per actor; ``num_gpus`` per
   actor where the cluster has GPUs): :func:`~landscape.index.classify.classify_results`, the
   local engine's own classification;
3. the driver writes the classified batches in order, one transaction each — the only writer,
   so SQLite works as well as PostgreSQL, and the stored rows are the local engine's.

Order is preserved end to end, so files get the ids the local engine with one worker gives
them. Videos run after images, as in the local engine. The jobs are sent in chunks, so the
driver's memory stays bounded however many files changed.

On several machines the media roots, the spill folder of sampled video frames and the keyframe
folder must be at the same paths on every node (a shared mount); see the README.
"""

from __future__ import annotations

import logging
import pickle
import socket
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

from landscape.errors import UserError

from .classify import ClassifySettings, classify_results
from .sandbox import Outcome, Sandbox
from .work import FileJob, FileResult, VideoSampling, init_worker, process_file
from .writer import Classified

__all__ = ["RayJob", "Written", "connect", "require_ray", "run_on_ray"]

#: what the driver gets back per file: the job, the worker's outcome (pixels dropped) and the
#: rows to store (None: nothing classified)
Written = tuple[FileJob, Outcome[FileResult], list[Classified] | None]

_EXTRAS_FIX = "install the extra: pip install 'landscape[ray]'"
# Jobs per dataset: bounds the driver's memory for an archive where everything is new; each
# chunk starts its actor pools again (a model load per classifier), negligible at this size.
_CHUNK = 20_000
# Files per extract call: small, so results stream to the classifiers as they are decoded.
_EXTRACT_BATCH = 4
_CONNECT_TIMEOUT = 5.0


@dataclass(frozen=True)
class RayJob:
    """Everything the actors need, picklable: how to extract, and the model (None: metadata
    only) with the classification settings."""

    preprocessing: dict[str, Any] | None
    draft: bool
    sampling: VideoSampling | None
    timeout: float
    memory_mb: int | None
    video_timeout: Callable[[FileJob], float]
    bundle: str | None = None
    backend: str = "torch"
    classify: ClassifySettings | None = None
    extract_actors: int = 2
    classifiers: int = 1
    gpus_per_classifier: float = 0.0
    batch_size: int = 32


def require_ray() -> Any:
    """The ``ray`` module with Ray Data, or a one-line error naming the extra."""
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise UserError(
            "--engine ray needs Ray Data, which is not installed", fix=_EXTRAS_FIX
        ) from exc
    return ray


def _probe(address: str) -> None:
    """Fail fast on a head that does not answer: ``ray.init`` itself retries for minutes."""
    if address == "auto" or address.startswith("local"):
        return
    target = urlsplit(address if "://" in address else f"ray://{address}")
    if target.hostname is None or target.port is None:
        raise UserError(
            f"cannot read the Ray address {address!r}",
            fix="give HOST:PORT of the head (e.g. 10.0.0.5:6379) or ray://HOST:10001",
        )
    try:
        with socket.create_connection((target.hostname, target.port), timeout=_CONNECT_TIMEOUT):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise UserError(
            f"the Ray head at {address} does not answer ({reason})",
            fix="start it with `ray start --head --port 6379`, or check the address and firewall",
        ) from exc


@contextmanager
def connect(address: str | None, *, num_cpus: int | None = None) -> Iterator[Any]:
    """A Ray connection for one run: the cluster at ``address``, else a local instance
    (``num_cpus``: its size; default all). One already initialised in this process (a test's,
    a notebook's) is used as it is and left running."""
    ray = require_ray()
    if address is not None:
        _probe(address)
    if ray.is_initialized():
        yield ray
        return
    try:
        ray.init(
            address=address,
            num_cpus=num_cpus if address is None else None,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.ERROR,
        )
    except (ConnectionError, RuntimeError, ValueError) as exc:
        first = " ".join(str(exc).split())[:300]
        raise UserError(
            f"cannot connect to Ray at {address or 'a local instance'}: {first}",
            fix="check `ray status` on the head, or run without --address for a local instance",
        ) from exc
    try:
        yield ray
    finally:
        ray.shutdown()


class _Extract:
    """Ray actor: extract/decode batches of jobs in a sandboxed worker of its own."""

    def __init__(self, job: RayJob) -> None:
        self._job = job
        self._sandbox = Sandbox(
            1,
            timeout=job.timeout,
            memory_mb=job.memory_mb,
            initializer=init_worker,
            initargs=(job.preprocessing, job.draft, job.sampling),
            preload=("numpy", "PIL.Image", "landscape.index.work"),
        )
        self._sandbox.__enter__()

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[bytes]]:
        jobs: list[FileJob] = [pickle.loads(item) for item in batch["job"]]
        done: dict[str, Outcome[FileResult]] = {}
        for job, outcome in self._sandbox.map_unordered(
            process_file, jobs, timeout_for=self._job.video_timeout
        ):
            done[job.path] = outcome
        return {"item": [pickle.dumps((job, done[job.path])) for job in jobs]}

    def __del__(self) -> None:
        self._sandbox.close()


class _Classify:
    """Ray actor: the model, loaded once; classifies batches as the local engine does."""

    def __init__(self, job: RayJob) -> None:
        from landscape.inference.predictor import Predictor

        assert job.bundle is not None and job.classify is not None
        device = "cuda" if job.gpus_per_classifier > 0 else "cpu"
        self._predictor = Predictor.from_bundle(job.bundle, backend=job.backend, device=device)
        self._settings = job.classify

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[bytes]]:
        items: list[tuple[FileJob, Outcome[FileResult]]] = [
            pickle.loads(item) for item in batch["item"]
        ]
        ok = [i for i, (_, outcome) in enumerate(items) if outcome.ok and outcome.value]
        results = [items[i][1].value for i in ok]
        try:
            classified = classify_results(self._predictor, results, self._settings)  # type: ignore[arg-type]
        finally:
            for result in results:
                if result is not None and result.frames is not None:
                    result.frames.discard()
        rows: dict[int, list[Classified]] = {ok[k]: v for k, v in classified.items()}
        return {
            "item": [
                pickle.dumps((job, _slim(outcome), rows.get(i)))
                for i, (job, outcome) in enumerate(items)
            ]
        }


def _slim(outcome: Outcome[FileResult]) -> Outcome[FileResult]:
    """The outcome without what the driver does not store (pixels, spilled frames)."""
    if outcome.value is None:
        return outcome
    return replace(outcome, value=replace(outcome.value, pixels=None, frames=None))


def _unclassified(batch: dict[str, Any]) -> dict[str, list[bytes]]:
    """Metadata only: the driver's triples, without rows."""
    out = []
    for item in batch["item"]:
        job, outcome = pickle.loads(item)
        out.append(pickle.dumps((job, _slim(outcome), None)))
    return {"item": out}


def _chunks(items: Iterable[FileJob], size: int) -> Iterator[list[FileJob]]:
    chunk: list[FileJob] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def run_on_ray(
    ray: Any,
    job: RayJob,
    jobs: Iterable[FileJob],
    write: Callable[[Sequence[Written]], None],
    *,
    extract_batch: int = _EXTRACT_BATCH,
) -> None:
    """Run ``jobs`` through the Ray pipeline, calling ``write`` with each batch of
    ``job.batch_size`` finished files, in the order of ``jobs``."""
    import ray.data

    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True
    context.enable_progress_bars = False  # the CLI shows its own bar
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    for chunk in _chunks(jobs, _CHUNK):
        dataset = ray.data.from_items(
            [{"job": pickle.dumps(item)} for item in chunk],
            override_num_blocks=max(1, min(len(chunk) // extract_batch, 200)),
        ).map_batches(
            _Extract,
            fn_constructor_kwargs={"job": job},
            batch_size=extract_batch,
            compute=ray.data.ActorPoolStrategy(min_size=1, max_size=max(1, job.extract_actors)),
            num_cpus=1,
        )
        if job.bundle is not None:
            dataset = dataset.map_batches(
                _Classify,
                fn_constructor_kwargs={"job": job},
                batch_size=job.batch_size,
                compute=ray.data.ActorPoolStrategy(min_size=1, max_size=max(1, job.classifiers)),
                num_cpus=1,
                num_gpus=job.gpus_per_classifier or None,
            )
        else:
            dataset = dataset.map_batches(_unclassified, batch_size=job.batch_size)
        try:
            for batch in dataset.iter_batches(batch_size=job.batch_size, batch_format="numpy"):
                write([pickle.loads(item) for item in batch["item"]])
        except ray.exceptions.RayError as exc:
            first = " ".join(str(exc).split())[:300]
            raise UserError(
                f"the Ray job failed: {first}",
                fix="see the Ray logs (/tmp/ray/session_latest/logs); files written so far are "
                "kept and a re-run does the rest",
            ) from exc

"""Worker processes for untrusted media: a per-item timeout, a memory cap and crash isolation.

A decoder that hangs, segfaults or allocates without bound on a crafted file must cost that file
only. :class:`Sandbox` runs a module-level function on each item in a small set of worker
processes, one item per worker at a time, so every failure is attributable to exactly one item:

- an exception in the function → kind ``"error"`` (a :class:`~landscape.errors.UserError` keeps
  its own one-line message, anything else reads ``"TypeName: message"``);
- an allocation beyond the cap → kind ``"memory"`` (each worker caps ``RLIMIT_DATA``);
- a worker past the item's deadline → SIGKILLed and replaced, kind ``"timeout"``;
- a worker that dies (segfault, ``os._exit``, SIGKILL by the OOM killer) → replaced,
  kind ``"crash"`` naming the signal or exit code.

Per-item failures are results, never exceptions; only a broken setup (an initializer that fails
or a worker that cannot start) raises.

Choices, measured on this project's Linux machines (2 cores, Python 3.11, torch 2.14 CPU):

- **Start method: forkserver** by default. A spawned worker pays the interpreter start and every
  import again (≈0.05 s bare, ≈0.15 s with numpy + Pillow, ≈2 s with torch), and every timed-out
  or crashed worker is replaced by a fresh one. The forkserver imports the ``preload`` modules
  once and forks each worker from that process: replacing a worker whose initializer imports
  torch took 0.03 s with ``preload=("torch",)`` against 1.6 s without and 1.7 s with spawn.
  The forkserver only imports (numpy's and torch's imports are fork-safe; nothing runs there),
  whereas forking the *main* process is unsafe once torch or any thread runs — which is why the
  plain "fork" method is not offered. ``start_method="spawn"`` remains available.
- **Memory cap: RLIMIT_DATA**, not RLIMIT_AS. Since Linux 4.7 RLIMIT_DATA counts private
  writable mappings, so numpy, Pillow, bytearray and torch CPU allocations all fail cleanly under
  it (``MemoryError`` / torch's ``DefaultCPUAllocator: can't allocate memory``), while it ignores
  the address space that shared libraries and allocator reservations take: ``import torch`` needs
  more than 2 GiB of RLIMIT_AS but under 1 GiB of RLIMIT_DATA.
- **Plain processes and pipes**, not ``concurrent.futures.ProcessPoolExecutor``: one dead worker
  breaks that whole pool (``BrokenProcessPool``); here it costs one item. Pipes (no queues, no
  locks) keep the parent free of semaphores and shared state a killed worker could corrupt.
"""

from __future__ import annotations

import contextlib
import errno
import math
import multiprocessing
import os
import queue
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any, Generic, Literal, TypeVar

from landscape.errors import UserError

__all__ = ["Outcome", "OutcomeKind", "Sandbox", "SandboxError", "StartMethod"]

T = TypeVar("T")
R = TypeVar("R")

OutcomeKind = Literal["ok", "error", "timeout", "crash", "memory"]
StartMethod = Literal["forkserver", "spawn"]

# Messages of allocation failures that do not raise MemoryError (torch's CPU and CUDA allocators,
# C++ std::bad_alloc surfacing through bindings, libraries reporting ENOMEM as text).
_MEMORY_MARKERS = (
    "can't allocate memory",
    "cannot allocate memory",
    "out of memory",
    "bad_alloc",
    "failed to allocate",
)
_MAX_MESSAGE = 500
# How long a worker may take to exit after being told to (idle) or killed (busy).
_JOIN_SECONDS = 5.0
_PR_SET_PDEATHSIG = 1


class SandboxError(RuntimeError):
    """The sandbox itself cannot run: a worker's initializer failed or a worker cannot start."""


@dataclass(frozen=True)
class Outcome(Generic[R]):
    """What happened to one item: its value, or why there is none.

    ``error`` is one line (``None`` when ``ok``); ``seconds`` is the wall time from handing the
    item to a worker to its result (for a timeout, about the deadline).
    """

    ok: bool
    value: R | None
    error: str | None
    kind: OutcomeKind
    seconds: float


class _Worker:
    """The parent's handle on one worker process and the item it holds."""

    def __init__(self, process: Any, conn: Connection, start_deadline: float):
        self.process = process
        self.conn = conn
        self.state: Literal["starting", "idle", "busy"] = "starting"
        self.start_deadline = start_deadline
        self.item: Any = None
        self.started = 0.0
        self.deadline = math.inf
        self.limit = 0.0
        self.tasks = 0


class Sandbox:
    """A set of worker processes that run one function per item, each failure costing one item.

    ``workers`` processes (``0``: run in this process, without isolation — for tests and
    debugging; timeouts and the memory cap do not apply then). ``timeout`` is the default
    per-item deadline in seconds; ``memory_mb`` caps each worker's data segment (``None``: no
    cap). ``initializer(*initargs)`` runs once in each worker as it starts (load a model, set a
    decoder's options); it and every function given to :meth:`map_unordered` must be picklable,
    i.e. defined at module level. A worker is replaced after ``max_tasks_per_worker`` items
    (``None``: never), so slow leaks in native decoders stay bounded.

    ``start_method`` is ``"forkserver"`` (default: a replacement worker starts in milliseconds)
    or ``"spawn"``. ``preload`` names modules the forkserver imports once before forking workers
    (e.g. ``("torch",)``); it takes effect only if this process has not started its forkserver
    yet. The forkserver and multiprocessing's resource tracker are helper processes that live as
    long as this process does; the workers do not outlive :meth:`close`, and they die with this
    process even if it is killed (see ``_die_with_parent``). ``start_timeout`` bounds a worker's
    start, initializer included. ``prestart``: start the workers on entering the ``with``
    (default) rather than when the first item arrives — a caller that may have nothing to do
    (a re-run over an unchanged tree) starts none.

    Use as a context manager; closing kills busy workers and reaps every worker.
    """

    def __init__(
        self,
        workers: int = 2,
        *,
        timeout: float = 30.0,
        memory_mb: int | None = 2048,
        initializer: Callable[..., None] | None = None,
        initargs: tuple[Any, ...] = (),
        max_tasks_per_worker: int | None = 500,
        start_method: StartMethod = "forkserver",
        preload: Sequence[str] = (),
        start_timeout: float = 300.0,
        prestart: bool = True,
    ):
        if workers < 0:
            raise ValueError(f"workers must be >= 0, got {workers}")
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
        if memory_mb is not None and memory_mb <= 0:
            raise ValueError(f"memory_mb must be > 0 or None, got {memory_mb}")
        if max_tasks_per_worker is not None and max_tasks_per_worker < 1:
            raise ValueError(
                f"max_tasks_per_worker must be >= 1 or None, got {max_tasks_per_worker}"
            )
        if start_method not in ("forkserver", "spawn"):
            raise ValueError(f"start_method must be 'forkserver' or 'spawn', got {start_method!r}")
        self.workers = workers
        self.timeout = float(timeout)
        self.memory_mb = memory_mb
        self.max_tasks_per_worker = max_tasks_per_worker
        self.start_timeout = float(start_timeout)
        self.prestart = prestart
        self._initializer = initializer
        self._initargs = initargs
        self._ctx = multiprocessing.get_context(start_method)
        self._start_method = start_method
        if start_method == "forkserver" and preload:
            # '__main__' is the forkserver's own default preload; keep it.
            self._ctx.set_forkserver_preload(["__main__", *preload])
        self._pool: list[_Worker] = []
        self._closed = False
        self._mapping = False
        self._initialized_inline = False
        # map_ahead's way to interrupt a mapping waiting on its workers from another thread.
        self._abandon = threading.Event()
        self._wake: int | None = None

    # -- lifecycle --------------------------------------------------------------------------------

    def __enter__(self) -> Sandbox:
        self._check_open()
        if self.prestart:
            # Start now so the initializers (model loading) overlap with the caller's setup.
            self._fill()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop every worker: idle ones are told to exit, busy or starting ones are killed; all
        are reaped. Idempotent; the sandbox cannot be used afterwards."""
        self._closed = True
        pool, self._pool = self._pool, []
        for worker in pool:
            if worker.state == "idle":
                with contextlib.suppress(OSError):
                    worker.conn.send(None)
            else:
                _kill(worker)
        deadline = time.monotonic() + _JOIN_SECONDS
        for worker in pool:
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                _kill(worker)
            _reap(worker)

    # -- mapping ----------------------------------------------------------------------------------

    def map_unordered(
        self,
        fn: Callable[[T], R],
        items: Iterable[T],
        *,
        timeout_for: Callable[[T], float] | None = None,
    ) -> Generator[tuple[T, Outcome[R]], None, None]:
        """Run ``fn`` on every item; yield ``(item, outcome)`` as each finishes, in any order.

        ``items`` is read lazily and at most ``2 × workers`` items are held at a time (handed
        to a worker or waiting for one), so a generator walking a huge tree keeps memory flat.
        The yielded item is the very object read from ``items``. ``timeout_for(item)`` gives an
        item its own deadline (e.g. scaled to a video's length); when it fails or returns a
        value that is not a positive number, ``timeout`` applies. Leaving the iteration early
        (``break``, an exception, ``close()`` on the iterator) kills the workers still busy with
        abandoned items. One iteration at a time per sandbox.
        """
        self._check_open()
        if self.workers == 0:
            return self._map_inline(fn, items)
        return self._map_isolated(fn, items, timeout_for)

    def map_ahead(
        self,
        fn: Callable[[T], R],
        items: Iterable[T],
        *,
        window: int,
        timeout_for: Callable[[T], float] | None = None,
    ) -> Generator[tuple[T, Outcome[R]], None, None]:
        """:meth:`map_unordered` that keeps the workers busy while the caller is not iterating.

        A plain iteration hands out work only when the caller asks for the next outcome, so
        the workers idle while the caller does something slow with the previous ones (runs a
        network, writes a database). Here a thread runs the mapping, and up to ``window``
        items (at least the ``2 × workers`` the mapping itself holds) are read ahead from
        ``items``; their outcomes wait in a buffer for the caller.
        ``items`` is still read on the calling thread, so a generator that queries a database
        session stays on the thread that owns it. Leaving early stops the thread and kills the
        workers still busy with abandoned items, as :meth:`map_unordered` does.
        """
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        if self.workers == 0:
            yield from self.map_unordered(fn, items, timeout_for=timeout_for)
            return
        todo: queue.SimpleQueue[Any] = queue.SimpleQueue()
        done: queue.SimpleQueue[Any] = queue.SimpleQueue()
        stop = threading.Event()
        end = object()

        def fed() -> Iterator[T]:
            while (item := todo.get()) is not end and not stop.is_set():
                yield item

        def run() -> None:
            try:
                for pair in self.map_unordered(fn, fed(), timeout_for=timeout_for):
                    done.put(pair)
                    if stop.is_set():
                        break
            except BaseException as exc:  # handed to the caller's thread
                done.put(exc)
            done.put(end)

        wake_read, wake_write = os.pipe()
        self._wake = wake_read
        thread = threading.Thread(target=run, name="sandbox-map-ahead", daemon=True)
        thread.start()
        # The mapping asks for an item whenever it holds fewer than its own window: fewer in
        # flight here would leave it waiting for an item while this thread waits for an outcome.
        window = max(window, self._held())
        source = iter(items)
        ahead, exhausted = 0, False
        try:
            while True:
                while not exhausted and ahead < window:
                    try:
                        todo.put(next(source))
                        ahead += 1
                    except StopIteration:
                        exhausted = True
                        todo.put(end)
                message = done.get()
                if message is end:
                    return
                if isinstance(message, BaseException):
                    raise message
                ahead -= 1
                yield message
        finally:
            stop.set()
            todo.put(end)
            if thread.is_alive():
                # Wake the mapping if it waits on busy workers: it kills them and returns.
                self._abandon.set()
                os.write(wake_write, b"x")
            thread.join()
            self._abandon.clear()
            self._wake = None
            os.close(wake_read)
            os.close(wake_write)

    def _map_inline(
        self, fn: Callable[[T], R], items: Iterable[T]
    ) -> Generator[tuple[T, Outcome[R]], None, None]:
        with self._one_mapping():
            if not self._initialized_inline and self._initializer is not None:
                self._initializer(*self._initargs)
            self._initialized_inline = True
            for item in items:
                started = time.monotonic()
                try:
                    value = fn(item)
                except Exception as exc:
                    kind = _kind_of(exc)
                    yield item, Outcome(False, None, _describe(exc), kind, _since(started))
                else:
                    yield item, Outcome(True, value, None, "ok", _since(started))

    def _map_isolated(
        self,
        fn: Callable[[T], R],
        items: Iterable[T],
        timeout_for: Callable[[T], float] | None,
    ) -> Generator[tuple[T, Outcome[R]], None, None]:
        with self._one_mapping():
            source = iter(items)
            pending: deque[T] = deque()
            exhausted = False
            window = self._held()
            try:
                while True:
                    self._check_open()
                    if self._abandon.is_set():
                        return
                    while not exhausted and len(pending) + self._count("busy") < window:
                        try:
                            pending.append(next(source))
                        except StopIteration:
                            exhausted = True
                    if exhausted and not pending and not self._count("busy"):
                        return
                    self._fill()
                    for worker in self._pool[:]:
                        if worker.state != "idle" or not pending:
                            continue
                        if not worker.process.is_alive():
                            # Died while idle (OOM killer, a stray signal): no item to blame.
                            self._retire(worker, kill=True)
                            continue
                        item = pending.popleft()
                        limit = self._limit_for(item, timeout_for)
                        failed = self._dispatch(worker, fn, item, limit)
                        if failed is not None:
                            yield item, failed
                    for item, outcome in self._collect():
                        yield item, outcome
            finally:
                # Abandoned items: their workers may be hanging; never let a stale result leak
                # into the next iteration.
                for worker in self._pool[:]:
                    if worker.state == "busy":
                        self._retire(worker, kill=True)

    # -- the parent's side of the protocol --------------------------------------------------------

    def _dispatch(
        self, worker: _Worker, fn: Callable[[T], R], item: T, limit: float
    ) -> Outcome[R] | None:
        """Hand ``item`` to an idle worker; an outcome when that failed, else ``None``."""
        started = time.monotonic()
        try:
            # Connection.send pickles before writing: a pickling error leaves the pipe clean.
            worker.conn.send((fn, item))
        except (BrokenPipeError, ConnectionResetError):
            worker.item, worker.started = item, started
            return self._died(worker)
        except Exception as exc:
            return Outcome(False, None, _describe(exc, "cannot send item to worker"), "error", 0.0)
        worker.state, worker.item = "busy", item
        worker.started, worker.limit, worker.deadline = started, limit, started + limit
        return None

    def _collect(self) -> Iterator[tuple[Any, Outcome[Any]]]:
        """Wait for the next messages, deaths or deadlines and turn them into outcomes."""
        waiting = [w for w in self._pool if w.state != "idle"]
        if not waiting:
            return
        now = time.monotonic()
        nearest = min(w.deadline if w.state == "busy" else w.start_deadline for w in waiting)
        handles: dict[Any, _Worker] = {}
        for worker in waiting:
            handles[worker.conn] = worker
            handles[worker.process.sentinel] = worker
        wake = [] if self._wake is None else [self._wake]
        ready = wait([*handles, *wake], timeout=max(0.0, nearest - now))
        if self._abandon.is_set():
            return
        seen: set[int] = set()
        for handle in ready:
            worker = handles[handle]
            if id(worker) in seen or worker not in self._pool:
                continue
            seen.add(id(worker))
            result = self._receive(worker)
            if result is not None:
                yield result
        now = time.monotonic()
        for worker in self._pool[:]:
            if worker.state == "busy" and now >= worker.deadline:
                item, seconds = worker.item, now - worker.started
                self._retire(worker, kill=True)
                message = f"timed out after {worker.limit:g} s (worker killed)"
                yield item, Outcome(False, None, message, "timeout", seconds)
            elif worker.state == "starting" and now >= worker.start_deadline:
                self._retire(worker, kill=True)
                raise SandboxError(
                    f"a worker did not start within {self.start_timeout:g} s "
                    "(initializer too slow or stuck)"
                )

    def _receive(self, worker: _Worker) -> tuple[Any, Outcome[Any]] | None:
        """Read one message from a worker whose pipe or sentinel is ready."""
        try:
            message = worker.conn.recv() if worker.conn.poll() else None
        except (EOFError, OSError):
            message = None
        if message is None:
            if worker.process.is_alive() and worker.conn.poll() is False:
                return None  # spurious wake-up
            return worker.item, self._died(worker)
        tag = message[0]
        if tag == "ready":
            worker.state = "idle"
            return None
        if tag == "init-error":
            _, text, is_user_error = message
            self._retire(worker, kill=True)
            if is_user_error:
                raise UserError(text)
            if self.memory_mb is not None:
                # e.g. torch's libraries alone need ~0.6 GiB: a tight cap fails at import.
                text += f" (each worker is capped at {self.memory_mb} MB: is that enough?)"
            raise SandboxError(text)
        _, kind, payload = message
        item, seconds = worker.item, time.monotonic() - worker.started
        worker.state, worker.item, worker.deadline = "idle", None, math.inf
        worker.tasks += 1
        if kind == "ok":
            outcome: Outcome[Any] = Outcome(True, payload, None, "ok", seconds)
        else:
            if kind == "memory" and self.memory_mb is not None:
                payload = f"{payload} (memory cap {self.memory_mb} MB)"
            outcome = Outcome(False, None, payload, kind, seconds)
        worn_out = (
            self.max_tasks_per_worker is not None and worker.tasks >= self.max_tasks_per_worker
        )
        # A failed allocation can leave a native library's state half-built: start afresh.
        if worn_out or kind == "memory":
            self._retire(worker, kill=False)
        return item, outcome

    def _died(self, worker: _Worker) -> Outcome[Any]:
        """Reap a worker that died on its own; the outcome of the item it held."""
        was_starting = worker.state == "starting"
        worker.process.join(_JOIN_SECONDS)
        code = worker.process.exitcode
        self._retire(worker, kill=True)
        cause = _exit_cause(code)
        if was_starting:
            raise SandboxError(f"a worker died while starting: {cause}")
        return Outcome(False, None, f"worker died: {cause}", "crash", _since(worker.started))

    # -- the pool ---------------------------------------------------------------------------------

    def _fill(self) -> None:
        while len(self._pool) < self.workers:
            self._pool.append(self._start_worker())

    def _start_worker(self) -> _Worker:
        parent_end, child_end = self._ctx.Pipe(duplex=True)
        process = self._ctx.Process(  # type: ignore[attr-defined]
            target=_worker_main,
            args=(
                child_end,
                self.memory_mb,
                self._initializer,
                self._initargs,
                self._start_method == "forkserver",
            ),
            name="landscape-sandbox",
            # Daemonic: multiprocessing's exit handler kills them if close() was never called.
            daemon=True,
        )
        process.start()
        child_end.close()
        return _Worker(process, parent_end, time.monotonic() + self.start_timeout)

    def _retire(self, worker: _Worker, *, kill: bool) -> None:
        """Take a worker out of the pool (replaced lazily by :meth:`_fill`)."""
        if worker in self._pool:
            self._pool.remove(worker)
        if kill:
            _kill(worker)
        else:
            with contextlib.suppress(OSError):
                worker.conn.send(None)
            worker.process.join(_JOIN_SECONDS)
            if worker.process.is_alive():
                _kill(worker)
        _reap(worker)

    def _held(self) -> int:
        """Items a mapping holds at most (handed to a worker or waiting for one)."""
        return 2 * self.workers

    def _count(self, state: str) -> int:
        return sum(1 for w in self._pool if w.state == state)

    def _limit_for(self, item: T, timeout_for: Callable[[T], float] | None) -> float:
        if timeout_for is None:
            return self.timeout
        try:
            limit = float(timeout_for(item))
        except Exception:
            return self.timeout  # a probe that fails on a crafted file must not cost the run
        return limit if math.isfinite(limit) and limit > 0 else self.timeout

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this Sandbox is closed")

    @contextlib.contextmanager
    def _one_mapping(self) -> Iterator[None]:
        if self._mapping:
            raise RuntimeError("one map_unordered at a time: finish or close() the previous one")
        self._check_open()
        self._mapping = True
        try:
            yield
        finally:
            self._mapping = False


# -- helpers shared by both sides -----------------------------------------------------------------


def _kill(worker: _Worker) -> None:
    with contextlib.suppress(OSError, ValueError, AttributeError):
        worker.process.kill()


def _reap(worker: _Worker) -> None:
    with contextlib.suppress(OSError, ValueError):
        worker.process.join(_JOIN_SECONDS)
    with contextlib.suppress(OSError):
        worker.conn.close()


def _since(started: float) -> float:
    return time.monotonic() - started


def _exit_cause(code: int | None) -> str:
    if code is None:
        return "no exit status"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (the kernel's OOM killer, or another process)" if -code == signal.SIGKILL else ""
        return f"killed by {name} (signal {-code}){hint}"
    return f"exited with code {code}"


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= _MAX_MESSAGE else line[: _MAX_MESSAGE - 1] + "…"


def _describe(exc: BaseException, context: str | None = None) -> str:
    """One line: a UserError's own message, else ``TypeName: message``."""
    if isinstance(exc, UserError):
        text = str(exc)
    else:
        detail = str(exc)
        text = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    return _one_line(f"{context}: {text}" if context else text)


def _kind_of(exc: BaseException) -> OutcomeKind:
    if isinstance(exc, MemoryError):
        return "memory"
    if isinstance(exc, OSError) and exc.errno == errno.ENOMEM:
        return "memory"
    if isinstance(exc, RuntimeError) and any(m in str(exc).lower() for m in _MEMORY_MARKERS):
        return "memory"
    return "error"


# -- the worker's side ----------------------------------------------------------------------------


def _cap_memory(memory_mb: int) -> None:
    import resource

    limit = memory_mb << 20
    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))


def _die_with_parent(forkserver: bool) -> None:
    """Make sure this worker cannot outlive the main process, even one killed with SIGKILL.

    Two mechanisms, because neither covers every case alone:

    - a thread waiting on the parent's sentinel exits the worker when the main process is gone
      (any start method; it needs the GIL, so a native loop that holds it is not covered);
    - under forkserver, the kernel's parent-death signal: the forkserver (the worker's parent,
      single-threaded) exits when the main process does, and the kernel SIGKILLs the worker
      whatever it is doing. multiprocessing hands every forkserver child the write end of the
      forkserver's "alive" pipe, so the forkserver would wait for its own workers while they
      wait for it: the worker closes its copy first. Not used with spawn, where the parent is
      the main process and Linux sends the signal when the *thread* that started the worker
      ends, which in a thread pool can be any time.
    """
    parent = multiprocessing.parent_process()
    if parent is None:
        return
    if forkserver and sys.platform.startswith("linux"):
        import ctypes
        from multiprocessing import forkserver as _fs

        server = getattr(_fs, "_forkserver", None)
        alive_fd = getattr(server, "_forkserver_alive_fd", None)
        if isinstance(alive_fd, int):
            with contextlib.suppress(OSError):
                os.close(alive_fd)
            server._forkserver_alive_fd = None  # type: ignore[union-attr]
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    sentinel = parent.sentinel

    def watch() -> None:
        wait([sentinel])
        os._exit(1)

    threading.Thread(target=watch, name="sandbox-parent-watch", daemon=True).start()
    # The parent may have died before the signal was armed: then it will never come.
    if not parent.is_alive():
        os._exit(1)


def _worker_main(
    conn: Connection,
    memory_mb: int | None,
    initializer: Callable[..., None] | None,
    initargs: tuple[Any, ...],
    forkserver: bool,
) -> None:
    """A worker's life: cap, initialise, then run one item at a time until told to stop."""
    # Ctrl+C reaches the whole process group; the parent decides, the workers must not die
    # half-way and be reported as crashes.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(forkserver)
    if memory_mb is not None:
        _cap_memory(memory_mb)
    try:
        if initializer is not None:
            initializer(*initargs)
    except BaseException as exc:
        conn.send(
            ("init-error", _describe(exc, "worker initializer failed"), isinstance(exc, UserError))
        )
        return
    conn.send(("ready",))
    while True:
        try:
            task = conn.recv()
        except EOFError:
            return  # the parent is gone
        except Exception as exc:
            conn.send(("done", "error", _describe(exc, "cannot unpickle item in worker")))
            continue
        if task is None:
            return
        fn, item = task
        try:
            reply: tuple[str, str, Any] = ("done", "ok", fn(item))
        except BaseException as exc:
            reply = ("done", _kind_of(exc), _describe(exc))
        try:
            conn.send(reply)
        except Exception as exc:
            kind = _kind_of(exc)
            conn.send(("done", kind, _describe(exc, "cannot send result to parent")))

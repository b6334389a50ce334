"""The REST API under load at 100,000 files: ``GET /api/v1/files`` with two filters and a page
of 60 from N concurrent clients (each count in ``--clients``) on loopback, the gallery page's
server time, and thumbnails cached against made on the first request.

Fills a fresh index as ``bench_search.py`` does (rows generated in the database), adds a folder
of real camera-sized JPEGs (indexed for real, for the thumbnails), starts ``landscape serve`` in
a process of its own, and for ``--seconds`` runs ``--clients`` httpx clients that each send the
next request as soon as the last one answered. Prints p50/p95/p99 and requests/s.

    python benchmarks/bench_api.py [--files 100000] [--clients 1,4] [--seconds 20] [--postgres]
        [--thumbnails 30] [--resolution 1920x1080]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_search import CAMERAS, LABELS, PLACES, _fill


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _photos(root: Path, n: int, resolution: tuple[int, int]) -> Path:
    from landscape.data.archive import ArchiveSpec, build_archive

    spec = ArchiveSpec(per_class=max(1, n // 5), size=256, resolution=resolution, odd_files=False)
    return build_archive(root / "photos", spec).root


def _token(url: str) -> str:
    from landscape.index.accounts import add_user, issue_token
    from landscape.index.db import open_index, session_factory

    with session_factory(open_index(url))() as s:
        add_user(s, "bench", "analyst", None)
        token, _ = issue_token(s, "bench")
        s.commit()
    return token


def _params(rng: random.Random) -> dict[str, Any]:
    """Two filters, as a person narrows the gallery."""
    shape = rng.randrange(4)
    label = rng.choice(LABELS)
    if shape == 0:
        return {"label": label, "min_confidence": round(rng.uniform(0.5, 0.95), 2)}
    if shape == 1:
        return {"label": label, "camera": rng.choice(CAMERAS)[1]}
    if shape == 2:
        return {"label": label, "place": rng.choice(PLACES)[2]}
    return {"media": "image", "taken_after": f"{rng.randrange(2013, 2025)}-01-01"}


async def _load(base: str, token: str, clients: int, seconds: float) -> list[float]:
    import httpx

    headers = {"Authorization": f"Bearer {token}"}
    times: list[float] = []
    stop = time.perf_counter() + seconds

    async def client(seed: int) -> None:
        rng = random.Random(seed)
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as http:
            while time.perf_counter() < stop:
                params = {**_params(rng), "limit": 60}
                started = time.perf_counter()
                response = await http.get("/api/v1/files", params=params)
                times.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200, response.text

    await asyncio.gather(*(client(i) for i in range(clients)))
    return times


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _advance_sequences(url: str) -> None:
    """``_fill`` inserts explicit ids: move PostgreSQL's sequences past them."""
    from sqlalchemy import text

    from landscape.index.db import open_index

    engine = open_index(url)
    if engine.dialect.name != "postgresql":
        return
    with engine.begin() as connection:
        for table in ("roots", "files", "predictions"):
            connection.execute(
                text(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT coalesce(max(id), 1) FROM {table}))"
                )
            )


def _photo_ids(url: str, photos: Path) -> list[int]:
    from sqlalchemy import select

    from landscape.index.db import open_index, session_factory
    from landscape.index.schema import File, Root

    with session_factory(open_index(url))() as s:
        query = (
            select(File.id)
            .join(Root, Root.id == File.root_id)
            .where(Root.path == str(photos.resolve()), File.media_type == "image")
        )
        return list(s.scalars(query))


def _serve(url: str, home: Path, port: int, roots: list[Path]) -> subprocess.Popen[bytes]:
    env = {**os.environ, "LANDSCAPE_HOME": str(home)}
    command = [sys.executable, "-m", "landscape", "serve", "--db", url, "--port", str(port)]
    for root in roots:
        command += ["--root", str(root)]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)


def _wait(base: str) -> None:
    import httpx

    for _ in range(300):
        try:
            if httpx.get(f"{base}/api/v1/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the server did not start")


def _median_ms(http: Any, path: str, n: int) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        response = http.get(path)
        times.append((time.perf_counter() - t) * 1000)
        assert response.status_code == 200, response.text
    return statistics.median(times)


def _thumbnails(http: Any, ids: list[int], resolution: tuple[int, int]) -> None:
    """Each photo's first thumbnail request (decoded and cached), then cached ones: real 200
    responses with the bytes (httpx keeps no cache and sends no If-None-Match)."""
    first, cached = [], []
    for file_id in ids:
        t = time.perf_counter()
        response = http.get(f"/api/v1/files/{file_id}/thumbnail")
        first.append((time.perf_counter() - t) * 1000)
        assert response.status_code == 200 and response.content, response.text
        cached.append(_median_ms(http, f"/api/v1/files/{file_id}/thumbnail", 5))
    if not first:
        return
    floor = _median_ms(http, "/api/v1/health", 50)
    width, height = resolution
    print(
        f"  thumbnails of {len(first)} {width}x{height} JPEGs: first request p50 "
        f"{statistics.median(first):.1f} ms, cached p50 {statistics.median(cached):.1f} ms = "
        f"{statistics.median(first) / statistics.median(cached):.1f}x faster "
        f"(/api/v1/health, no auth: p50 {floor:.1f} ms)",
        flush=True,
    )


def _run(name: str, url: str, args: argparse.Namespace, tmp: Path) -> None:
    import httpx

    from landscape.index.db import open_index
    from landscape.index.pipeline import IndexOptions, run_index

    started = time.perf_counter()
    _fill(url, args.files)
    _advance_sequences(url)
    photos = _photos(tmp, args.thumbnails, args.resolution)
    run_index(open_index(url), [photos], options=IndexOptions(workers=2))
    print(f"{name}: {args.files} files filled + {args.thumbnails} real photos indexed in "
          f"{time.perf_counter() - started:.0f} s", flush=True)  # fmt: skip
    token = _token(url)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    server = _serve(url, tmp / f"home-{name}", port, [photos])
    try:
        _wait(base)
        asyncio.run(_load(base, token, 2, 2.0))  # warm-up
        for clients in (int(c) for c in str(args.clients).split(",")):
            times = asyncio.run(_load(base, token, clients, args.seconds))
            print(
                f"  GET /api/v1/files, two filters, page of 60, {clients} clients for "
                f"{args.seconds:g} s: {len(times) / args.seconds:.0f} req/s, p50 "
                f"{statistics.median(times):.1f} ms, p95 {_pct(times, 0.95):.1f} ms, "
                f"p99 {_pct(times, 0.99):.1f} ms",
                flush=True,
            )
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=base, headers=headers, timeout=30) as http:
            gallery = []
            for _ in range(30):
                t = time.perf_counter()
                response = http.get("/", params={"label": random.choice(LABELS)})
                gallery.append((time.perf_counter() - t) * 1000)
            if response.status_code == 200:
                print(
                    f"  gallery page (/ with a label filter, 1 client): p50 "
                    f"{statistics.median(gallery):.1f} ms, p95 {_pct(gallery, 0.95):.1f} ms",
                    flush=True,
                )
            else:
                print(f"  gallery page: HTTP {response.status_code} (no GUI installed?)")
            _thumbnails(http, _photo_ids(url, photos)[: args.thumbnails], args.resolution)
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--clients", default="1,4", help="comma-separated client counts")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--thumbnails", type=int, default=30)
    parser.add_argument(
        "--resolution",
        type=lambda text: tuple(int(x) for x in text.lower().split("x")),
        default=(1920, 1080),
        help="the photos' size, WIDTHxHEIGHT (a 12 MP camera: 4000x3000)",
    )
    parser.add_argument("--postgres", action="store_true", help="also on a PostgreSQL server")
    parser.add_argument("--no-sqlite", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if not args.no_sqlite:
            _run("SQLite", f"sqlite:///{tmp / 'api.db'}", args, tmp / "sqlite")
        if args.postgres:
            from landscape.index._testing import PostgresServer

            with PostgresServer(durable=True) as server:
                url = server.create_database("api", vector=False)
                _run("PostgreSQL", url, args, tmp / "pg")


if __name__ == "__main__":
    main()

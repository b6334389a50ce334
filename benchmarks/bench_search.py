"""The repository query behind ``landscape search`` (and the API) at 100,000 files: p95 latency
of two-filter queries returning a page of 60, on SQLite and PostgreSQL, with the query plans.

Fills a fresh index with N synthetic files in bulk (a file, its metadata and one prediction
each, every 20th file a video with a three-segment timeline besides: five labels, twelve years
of capture times, GPS over Europe, three cameras, three campaign folders), then runs each query
shape ``--repeat`` times with varying values, in process, and prints p50/p95 per shape and the
plan the database chose.

    python benchmarks/bench_search.py [--files 100000] [--repeat 40] [--postgres]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

LABELS = ("coast", "desert", "forest", "glacier", "mountain")
CAMERAS = (("Canon", "EOS R5"), ("DJI", "Mavic 3"), ("Sony", "ILCE-7M4"))
PLACES = (
    ("France", "Brittany", "Brest"),
    ("Norway", "Vestland", "Bergen"),
    ("Spain", "Murcia", "Lorca"),
)
FOLDERS = ("2025-01-flight", "2024-05 coast campaign", "2025-06 survey/day-2")


def _fill(url: str, n: int) -> None:
    from sqlalchemy import insert

    from landscape.index.db import open_index, session_factory
    from landscape.index.schema import File, MediaMetadata, Model, Prediction, Root

    engine = open_index(url)
    rng = random.Random(0)
    start = datetime(2013, 1, 1)
    with session_factory(engine)() as s:
        s.execute(insert(Root), [{"id": 1, "path": "/archive"}])
        s.execute(
            insert(Model),
            [
                {
                    "model_id": "bench",
                    "name": "bench",
                    "backbone": "efficientnet_lite0",
                    "classes": list(LABELS),
                    "metrics": {},
                    "bundle_path": "/nowhere",
                    "bundle_sha256": "0" * 64,
                    "active": True,
                }
            ],
        )
        chunk = 5000
        for base in range(0, n, chunk):
            ids = range(base + 1, min(n, base + chunk) + 1)
            files, media, preds = [], [], []
            for i in ids:
                label = LABELS[rng.randrange(5)]
                taken = start + timedelta(seconds=rng.randrange(12 * 365 * 86400))
                make, model = CAMERAS[rng.randrange(3)]
                country, region, city = PLACES[rng.randrange(3)]
                files.append(
                    {
                        "id": i,
                        "root_id": 1,
                        "relative_path": f"{FOLDERS[i % 3]}/{label}_{i:06d}.jpg",
                        "content_hash": f"{i:064x}",
                        "size": 500_000 + i,
                        "mtime_ns": i,
                        "media_type": "video" if i % 20 == 0 else "image",
                        "mime": "image/jpeg",
                        "status": "error" if i % 97 == 0 else "ok",
                        "taken_at": taken,
                    }
                )
                media.append(
                    {
                        "file_id": i,
                        "width": 1920,
                        "height": 1080,
                        "captured_at": taken,
                        "camera_make": make,
                        "camera_model": model,
                        "latitude": rng.uniform(36, 70),
                        "longitude": rng.uniform(-10, 30),
                        "place_country": country,
                        "place_region": region,
                        "place_city": city,
                    }
                )
                confidence = rng.uniform(0.2, 1.0)
                preds.append(
                    {
                        "file_id": i,
                        "model_id": "bench",
                        "segment": 0,
                        "label": label,
                        "confidence": confidence,
                        "probabilities": {label: confidence},
                        "is_unknown": confidence < 0.3,
                    }
                )
                if i % 20 == 0:  # a video: its dominant label above, then a 3-segment timeline
                    for number, seg_label in enumerate((label, rng.choice(LABELS), label), 1):
                        preds.append(
                            {
                                "file_id": i,
                                "model_id": "bench",
                                "segment": number,
                                "label": seg_label,
                                "confidence": confidence,
                                "probabilities": {seg_label: confidence},
                                "is_unknown": confidence < 0.3,
                                "segment_start": 10.0 * (number - 1),
                                "segment_end": 10.0 * number,
                            }
                        )
            s.execute(insert(File), files)
            s.execute(insert(MediaMetadata), media)
            s.execute(insert(Prediction), preds)
            s.commit()
    # The state after an index run: statistics (SQLite: `PRAGMA optimize` at its end) and,
    # on PostgreSQL, what autovacuum does after a bulk load (visibility map, statistics).
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("VACUUM ANALYZE")
    else:
        with engine.begin() as connection:
            connection.exec_driver_sql("ANALYZE")
    engine.dispose()


def _shapes(rng: random.Random) -> dict[str, Callable[[], Any]]:
    from landscape.index.repository import SearchFilters

    def day() -> date:
        return date(2013, 1, 1) + timedelta(days=rng.randrange(12 * 365))

    return {
        "label + min confidence": lambda: SearchFilters(
            label=rng.choice(LABELS), min_confidence=rng.uniform(0.5, 0.95), limit=60
        ),
        "label + taken after": lambda: SearchFilters(
            label=rng.choice(LABELS), taken_after=day(), limit=60
        ),
        "near + media": lambda: SearchFilters(
            near=(rng.uniform(40, 65), rng.uniform(-5, 25), 50.0), media="image", limit=60
        ),
        "place + label": lambda: SearchFilters(
            place=rng.choice(PLACES)[2], label=rng.choice(LABELS), limit=60
        ),
        "camera + taken before": lambda: SearchFilters(
            camera=rng.choice(CAMERAS)[1], taken_before=day(), limit=60
        ),
        "status + path": lambda: SearchFilters(status="error", path_contains="coast", limit=60),
        "unknown + label": lambda: SearchFilters(unknown=True, label=rng.choice(LABELS), limit=60),
        "video + label": lambda: SearchFilters(media="video", label=rng.choice(LABELS), limit=60),
    }


def _measure(url: str, repeat: int, plans: bool) -> None:
    from landscape.index.db import open_index, session_factory
    from landscape.index.repository import explain, search

    engine = open_index(url, create=False)
    rng = random.Random(1)
    with session_factory(engine)() as session:
        for name, make in _shapes(rng).items():
            search(session, make())  # warm the cache and the statement cache
            times, counts = [], []
            for _ in range(repeat):
                filters = make()
                started = time.perf_counter()
                counts.append(len(search(session, filters)))
                times.append((time.perf_counter() - started) * 1000)
            times.sort()
            p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
            print(
                f"  {name:<24} p50 {statistics.median(times):6.1f} ms  p95 {p95:6.1f} ms  "
                f"(rows per page: {min(counts)}–{max(counts)})"
            )
            if plans:
                for step, plan in enumerate(explain(session, make()), 1):
                    print(
                        f"    plan {step}:\n" + "\n".join(f"      {x}" for x in plan.splitlines())
                    )
    engine.dispose()


def _sqlite(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'search.db'}"
        started = time.perf_counter()
        _fill(url, args.files)
        print(f"SQLite: {args.files} files filled in {time.perf_counter() - started:.0f} s")
        _measure(url, args.repeat, not args.no_plans)


def _postgres(args: argparse.Namespace) -> None:
    from landscape.index._testing import PostgresServer

    with PostgresServer(durable=True) as server:
        url = server.create_database("search", vector=False)
        started = time.perf_counter()
        _fill(url, args.files)
        print(f"PostgreSQL: {args.files} files filled in {time.perf_counter() - started:.0f} s")
        _measure(url, args.repeat, not args.no_plans)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=40)
    parser.add_argument("--postgres", action="store_true", help="also on a PostgreSQL server")
    parser.add_argument("--no-sqlite", action="store_true", help="skip SQLite")
    parser.add_argument("--no-plans", action="store_true")
    args = parser.parse_args()
    if not args.no_sqlite:
        _sqlite(args)
    if args.postgres:
        _postgres(args)


if __name__ == "__main__":
    main()

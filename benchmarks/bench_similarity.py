"""Similarity search at 100,000 vectors: recall@10 of pgvector's HNSW index against the exact
scan, and the query latency of both (and of the SQLite exact scan), side by side in one run.

Fills an index with N files of one model, each with a 1280-float embedding (efficientnet_lite0's
feature size) drawn around 50 cluster centres (scenes of a kind look alike, which is what
makes approximate search hard), then asks Q queries (stored vectors, perturbed) of:

- ``ExactScan`` on SQLite (memory-mapped float16 unit vectors; the first query builds the cache),
- ``SqliteVecScan`` (sqlite-vec's exact KNN in C, the ``vec`` extra),
- ``ExactScan`` on PostgreSQL (the same scan, vectors read from PostgreSQL),
- ``PgVectorScan`` (HNSW, cosine, ``ef_search`` 100, iterative scans),

and reports p50/p95 per query and recall@10 of the HNSW answers against the exact ones.

    python benchmarks/bench_similarity.py [--vectors 100000] [--queries 50] [--dim 1280]
        [--no-postgres]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np


def _vectors(n: int, dim: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(50, dim)).astype(np.float32)
    which = rng.integers(0, 50, size=n)
    return (centres[which] + 0.6 * rng.normal(size=(n, dim)).astype(np.float32)).astype(np.float16)


def _fill(url: str, vectors: np.ndarray) -> None:
    from sqlalchemy import insert

    from landscape.index.db import open_index, session_factory
    from landscape.index.schema import Embedding, File, Model, Prediction, Root

    engine = open_index(url)
    with session_factory(engine)() as s:
        s.execute(insert(Root), [{"id": 1, "path": "/archive"}])
        model = {"model_id": "bench", "classes": ["a"], "bundle_path": "/x", "active": True}
        s.execute(insert(Model), [model])
        for base in range(0, len(vectors), 5000):
            ids = range(base + 1, min(len(vectors), base + 5000) + 1)
            s.execute(
                insert(File),
                [
                    {"id": i, "root_id": 1, "relative_path": f"f{i}.jpg", "size": 1,
                     "mtime_ns": i, "media_type": "image", "status": "ok"}
                    for i in ids
                ],
            )  # fmt: skip
            s.execute(
                insert(Prediction),
                [
                    {"id": i, "file_id": i, "model_id": "bench", "segment": 0, "label": "a",
                     "confidence": 1.0, "probabilities": {"a": 1.0}}
                    for i in ids
                ],
            )  # fmt: skip
            s.execute(
                insert(Embedding),
                [
                    {
                        "prediction_id": i,
                        "dim": vectors.shape[1],
                        "vector": vectors[i - 1].tobytes(),
                    }
                    for i in ids
                ],
            )
            s.commit()
    engine.dispose()


def _timed(index: Any, queries: np.ndarray, k: int = 10) -> tuple[list[list[int]], list[float]]:
    answers, times = [], []
    for q in queries:
        started = time.perf_counter()
        answers.append([m.prediction_id for m in islice(index.ranked(q), k)])
        times.append((time.perf_counter() - started) * 1000)
    return answers, times


def _line(name: str, times: list[float]) -> str:
    times = sorted(times)
    p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
    return f"  {name:<34} p50 {statistics.median(times):7.1f} ms  p95 {p95:7.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--dim", type=int, default=1280)
    parser.add_argument("--no-postgres", action="store_true", help="SQLite backends only")
    args = parser.parse_args()
    from landscape.index._testing import PostgresServer
    from landscape.index.db import open_index, session_factory
    from landscape.index.similarity import ExactScan
    from landscape.index.vector_pg import PgVectorScan, sync_vectors
    from landscape.index.vector_sqlite import SqliteVecScan

    vectors = _vectors(args.vectors, args.dim)
    rng = np.random.default_rng(1)
    picks = rng.integers(0, args.vectors, size=args.queries)
    queries = vectors[picks].astype(np.float32) + 0.1 * rng.normal(size=(args.queries, args.dim))
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'sim.db'}"
        started = time.perf_counter()
        _fill(url, vectors)
        print(
            f"{args.vectors} vectors of {args.dim} in SQLite: {time.perf_counter() - started:.0f} s"
        )
        with session_factory(open_index(url, create=False))() as session:
            started = time.perf_counter()
            sqlite_exact = ExactScan(session, "bench", Path(tmp) / "cache")
            print(f"  exact-scan cache built in {time.perf_counter() - started:.1f} s")
            exact_answers, sqlite_times = _timed(sqlite_exact, queries)
            started = time.perf_counter()
            vec = SqliteVecScan(session, "bench", Path(tmp) / "cache")
            print(f"  sqlite-vec file built in {time.perf_counter() - started:.1f} s")
            vec_answers, vec_times = _timed(vec, queries)
        vec_recall = statistics.mean(
            len(set(a) & set(b)) / len(b) for a, b in zip(vec_answers, exact_answers, strict=True)
        )
        print(_line("SQLite exact scan", sqlite_times))
        print(_line("SQLite sqlite-vec", vec_times))
        print(f"  sqlite-vec top 10 against the exact scan: {vec_recall:.3f}")
        if args.no_postgres:
            return
        with PostgresServer(durable=True) as server:
            pg = server.create_database("sim", vector=True)
            started = time.perf_counter()
            _fill(pg, vectors)
            print(f"same vectors in PostgreSQL: {time.perf_counter() - started:.0f} s")
            with session_factory(open_index(pg, create=False))() as session:
                started = time.perf_counter()
                sync_vectors(session)
                print(
                    f"  halfvec table + HNSW index built in {time.perf_counter() - started:.0f} s"
                )
                pg_exact = ExactScan(session, "bench", Path(tmp) / "cache-pg")
                pg_answers, pg_exact_times = _timed(pg_exact, queries)
                hnsw = PgVectorScan(session, "bench")
                hnsw_answers, hnsw_times = _timed(hnsw, queries)
    assert pg_answers == exact_answers  # the same exact answer from either database
    recall = statistics.mean(
        len(set(a) & set(b)) / len(b) for a, b in zip(hnsw_answers, exact_answers, strict=True)
    )
    print(f"{args.queries} queries, top 10:")
    print(_line("PostgreSQL exact scan", pg_exact_times))
    print(_line("PostgreSQL pgvector HNSW", hnsw_times))
    print(f"  recall@10 of HNSW against the exact scan: {recall:.3f}")


if __name__ == "__main__":
    main()

"""Memory-mapped backbone features for frozen-backbone training.

When the backbone is frozen and the training transform is deterministic, the backbone's output
for a file never changes, so it is computed once and the head trains on stored vectors — an
order of magnitude faster (see ``benchmarks/bench_feature_cache.py``). Entries are keyed by the
backbone, its weights' sha256, the preprocessing and each file's *content* hash, so renaming a
file reuses its row while editing it recomputes it.

Several processes may fill one entry at once (parallel study runs, DDP ranks, two users): the
missing rows are computed and written under a file lock, after re-reading the index, so the
second process waits and then finds the rows the first one wrote instead of overwriting them.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from filelock import FileLock
from torch.utils.data import DataLoader

from landscape.data.datasets import ImageDataset, Sample
from landscape.data.io import file_sha256
from landscape.models.weights import cache_dir

__all__ = ["FeatureCache", "collate_skip_none"]


def collate_skip_none(batch: list[Any]) -> Any:
    """Default collation after dropping items that failed to decode (``None``)."""
    from torch.utils.data import default_collate

    kept = [b for b in batch if b is not None]
    if not kept:
        return None
    return default_collate(kept)


class _IndexedDataset:
    """Wraps :class:`ImageDataset` to also return the position, for writing rows in order."""

    def __init__(self, inner: ImageDataset) -> None:
        self.inner = inner

    def __len__(self) -> int:
        return len(self.inner)

    def __getitem__(self, i: int) -> tuple[Any, int] | None:
        item = self.inner[i]
        return None if item is None else (item[0], i)


class FeatureCache:
    """A directory of float16 feature chunks plus a content-hash → (chunk, row) index."""

    def __init__(self, key_parts: dict[str, Any], root: Path | None = None) -> None:
        blob = json.dumps(key_parts, sort_keys=True, default=str).encode()
        self.key = hashlib.sha256(blob).hexdigest()[:20]
        self.dir = (root or cache_dir().parent / "features") / self.key
        self.dir.mkdir(parents=True, exist_ok=True)
        self._index_file = self.dir / "index.json"
        self._lock = FileLock(str(self.dir / "write.lock"))
        self.index: dict[str, list[int]] = self._read_index()
        key_file = self.dir / "key.json"
        if not key_file.is_file():
            tmp = key_file.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(key_parts, indent=2, default=str))
            os.replace(tmp, key_file)

    def _read_index(self) -> dict[str, list[int]]:
        if not self._index_file.is_file():
            return {}
        index: dict[str, list[int]] = json.loads(self._index_file.read_text())
        return index

    def _next_chunk_id(self) -> int:
        ids = [int(p.name[6:11]) for p in self.dir.glob("chunk-?????.npy")]
        return max(ids, default=-1) + 1

    def _chunk(self, n: int) -> np.ndarray:
        return np.load(self.dir / f"chunk-{n:05d}.npy", mmap_mode="r")

    def features(
        self,
        samples: Sequence[Sample],
        dataset_factory: Callable[[list[Sample]], ImageDataset],
        extractor: Callable[[torch.Tensor], torch.Tensor],
        *,
        batch_size: int = 32,
        num_workers: int = 0,
        progress: Callable[[int], None] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Features for ``samples`` (computing the missing ones) and a mask of decodable files."""
        hashes = [file_sha256(s.path) for s in samples]
        missing_pos: list[int] = []
        if any(h not in self.index for h in hashes):
            with self._lock:
                self.index = self._read_index()  # another process may have filled rows meanwhile
                first = {h: i for i, h in enumerate(hashes) if h not in self.index}
                missing_pos = sorted(first.values())
                if missing_pos:
                    self._compute(
                        [samples[i] for i in missing_pos],
                        [hashes[i] for i in missing_pos],
                        dataset_factory,
                        extractor,
                        batch_size,
                        num_workers,
                        progress,
                    )
        if progress is not None:  # the rows that were already cached (or duplicates)
            progress(len(samples) - len(missing_pos))
        rows: list[np.ndarray | None] = []
        for h in hashes:
            chunk, row = self.index[h]
            rows.append(None if chunk < 0 else np.asarray(self._chunk(chunk)[row]))
        ok = np.array([r is not None for r in rows])
        dim = next((r.shape[0] for r in rows if r is not None), 0)
        feats = np.stack([r if r is not None else np.zeros(dim, np.float16) for r in rows])
        return feats.astype(np.float32), ok

    @torch.inference_mode()
    def _compute(
        self,
        samples: list[Sample],
        hashes: list[str],
        dataset_factory: Callable[[list[Sample]], ImageDataset],
        extractor: Callable[[torch.Tensor], torch.Tensor],
        batch_size: int,
        num_workers: int,
        progress: Callable[[int], None] | None,
    ) -> None:
        loader: DataLoader[Any] = DataLoader(
            _IndexedDataset(dataset_factory(samples)),  # type: ignore[arg-type]
            batch_size=batch_size,
            num_workers=num_workers,
            collate_fn=collate_skip_none,
        )
        out: np.ndarray | None = None
        done = np.zeros(len(samples), dtype=bool)
        for batch in loader:
            if batch is None:
                continue
            images, positions = batch
            feats = extractor(images).float().cpu().numpy().astype(np.float16)
            if out is None:
                out = np.zeros((len(samples), feats.shape[1]), dtype=np.float16)
            out[positions.numpy()] = feats
            done[positions.numpy()] = True
            if progress is not None:
                progress(len(positions))
        chunk_id = self._next_chunk_id()  # under the lock: no other writer picks the same id
        if out is not None:
            tmp = self.dir / f"chunk-{chunk_id:05d}.tmp.npy"
            np.save(tmp, out)
            os.replace(tmp, self.dir / f"chunk-{chunk_id:05d}.npy")
        for pos, h in enumerate(hashes):
            # Undecodable files are remembered as (-1, -1) so they are not retried every epoch.
            self.index[h] = [chunk_id, pos] if done[pos] else [-1, -1]
        tmp_index = self._index_file.with_suffix(f".{os.getpid()}.tmp")
        tmp_index.write_text(json.dumps(self.index))
        os.replace(tmp_index, self._index_file)

"""The feature cache: rows reused by content, and safe for processes filling one entry at once."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

from landscape.data.datasets import load_dataset
from landscape.data.io import file_sha256
from landscape.data.transforms import Preprocessing, eval_transform
from landscape.train.feature_cache import FeatureCache

_PRE = Preprocessing(input_size=32, resize_size=32, mean=(0.5,) * 3, std=(0.5,) * 3)


def _mean_colour(images):  # type: ignore[no-untyped-def]
    """A deterministic 'backbone': each image's mean colour and mean brightness."""
    colour = images.mean(dim=(2, 3))
    return np.concatenate([colour.numpy(), colour.mean(dim=1, keepdim=True).numpy()], axis=1)


def _features(root: Path, data: Path) -> tuple[np.ndarray, np.ndarray]:
    import torch

    from landscape.data.datasets import ImageDataset

    index = load_dataset(data)
    cache = FeatureCache({"test": "mean-colour"}, root=root)
    return cache.features(
        index.samples,
        lambda s: ImageDataset(s, list(index.classes), eval_transform(_PRE)),
        lambda x: torch.from_numpy(_mean_colour(x)),
        batch_size=8,
    )


def test_rows_are_reused_across_instances(synth_small: Path, tmp_path: Path) -> None:
    feats, ok = _features(tmp_path, synth_small)
    assert ok.all() and feats.shape == (80, 4)
    chunks = sorted(tmp_path.glob("*/chunk-*.npy"))
    assert len(chunks) == 1
    again, _ = _features(tmp_path, synth_small)
    np.testing.assert_array_equal(again, feats)
    assert sorted(tmp_path.glob("*/chunk-*.npy")) == chunks  # nothing recomputed


_WORKER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import numpy as np, torch
    from landscape.data.datasets import ImageDataset, load_dataset
    from landscape.data.transforms import Preprocessing, eval_transform
    from landscape.train.feature_cache import FeatureCache

    root, data, parity = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    pre = Preprocessing(input_size=32, resize_size=32, mean=(0.5,) * 3, std=(0.5,) * 3)
    index = load_dataset(data)
    # The two processes want overlapping halves: every other file plus the first 20.
    samples = [s for i, s in enumerate(index.samples) if i % 2 == parity or i < 20]

    def extract(x):
        time.sleep(0.05)  # widen the window in which both processes write
        colour = x.mean(dim=(2, 3))
        return torch.cat([colour, colour.mean(dim=1, keepdim=True)], dim=1)

    cache = FeatureCache({"test": "mean-colour"}, root=root)
    Path(sys.argv[4]).touch()
    while not Path(sys.argv[5]).exists():  # start both extractions together
        time.sleep(0.01)
    feats, ok = cache.features(
        samples, lambda s: ImageDataset(s, list(index.classes), eval_transform(pre)), extract,
        batch_size=4,
    )
    assert ok.all()
    """
)


def test_two_processes_filling_one_entry_lose_nothing(synth_small: Path, tmp_path: Path) -> None:
    script = tmp_path / "worker.py"
    script.write_text(_WORKER)
    root = tmp_path / "cache"
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(script),
                str(root),
                str(synth_small),
                str(p),
                str(tmp_path / f"r{p}"),
                str(go),
            ]
        )
        for p in (0, 1)
    ]
    import time

    deadline = time.monotonic() + 120
    while not all((tmp_path / f"r{p}").exists() for p in (0, 1)):
        assert time.monotonic() < deadline, "workers did not start"
        time.sleep(0.05)
    go.touch()
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    # The index left by the two writers holds every file: neither overwrote the other's rows.
    (index_file,) = root.glob("*/index.json")
    index = json.loads(index_file.read_text())
    assert {file_sha256(s.path) for s in load_dataset(synth_small).samples} <= set(index)
    # Every file has a row, and each row is what a single process computes on its own.
    shared, ok = _features(root, synth_small)
    assert ok.all()
    alone, _ = _features(tmp_path / "alone", synth_small)
    np.testing.assert_allclose(shared, alone, atol=1e-3)
    chunk_ids = sorted(p.name for p in root.glob("*/chunk-*.npy"))
    assert len(chunk_ids) == len(set(chunk_ids)) >= 1
    assert not list(root.glob("*/*.tmp*"))

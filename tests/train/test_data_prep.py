"""The data preparation every fitter shares: splits, preprocessing, weights, loaders."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from landscape.config import load_train_config
from landscape.data.datasets import Sample
from landscape.errors import DatasetError
from landscape.models.net import create_model
from landscape.train.data_prep import (
    EpochSampler,
    class_weights,
    make_loaders,
    prepare_data,
    resolve_preprocessing,
    subsample,
    torch_threads,
)


def _samples(counts: dict[str, int]) -> list[Sample]:
    return [
        Sample(Path(f"/x/{label}/{i}.jpg"), label, "train")
        for label, n in counts.items()
        for i in range(n)
    ]


def test_subsample_caps_each_class_reproducibly_in_order() -> None:
    samples = _samples({"a": 10, "b": 3})
    kept = subsample(samples, 4, seed=1)
    assert [s.label for s in kept].count("a") == 4 and [s.label for s in kept].count("b") == 3
    assert kept == subsample(samples, 4, seed=1)
    assert kept == sorted(kept, key=samples.index)  # original order kept
    assert subsample(samples, None, seed=1) is samples


def test_class_weights_are_inverse_frequency_with_mean_one() -> None:
    weights = class_weights(_samples({"a": 30, "b": 10}), ["a", "b"])
    assert weights.tolist() == pytest.approx([40 / 60, 40 / 20])


def test_prepare_data_splits_writes_the_manifest_and_checks_val(
    synth_small: Path, tmp_path: Path
) -> None:
    cfg = load_train_config(None, {"data": str(synth_small), "out": str(tmp_path)})
    data = prepare_data(cfg, tmp_path)
    assert data.classes == ["coast", "desert", "forest", "glacier", "mountain"]
    assert sum(len(v) for v in data.splits.values()) == 80
    assert (tmp_path / "split.csv").is_file()
    no_val = load_train_config(
        None, {"data": str(synth_small), "out": str(tmp_path), "val_fraction": 0.0}
    )
    with pytest.raises(DatasetError, match="validation split is empty"):
        prepare_data(no_val, tmp_path)
    assert prepare_data(no_val, tmp_path, require_val=False).splits["val"] == []


def test_preprocessing_takes_the_crop_and_dataset_statistics(
    synth_small: Path, tmp_path: Path
) -> None:
    net, record = create_model("tiny_cnn", 5, weights="none")
    base = {"data": str(synth_small), "out": str(tmp_path)}
    train = _samples({})
    center = resolve_preprocessing(net, record, load_train_config(None, base), train)
    full = resolve_preprocessing(
        net, record, load_train_config(None, {**base, "crop": "full"}), train
    )
    assert (full.crop, center.crop) == ("full", "center")
    assert full.model_copy(update={"crop": "center"}) == center
    files = [Sample(p, p.parent.name, "train") for p in sorted(synth_small.rglob("*.jpg"))[:10]]
    own = resolve_preprocessing(
        net, record, load_train_config(None, {**base, "normalize": "dataset"}), files
    )
    assert own.mean != center.mean and all(0 < m < 1 for m in own.mean)


def test_loaders_shuffle_by_seed_and_epoch(tmp_path: Path) -> None:
    cfg = load_train_config(None, {"data": str(tmp_path), "batch_size": 4, "seed": 2})
    data = {"train": torch.utils.data.TensorDataset(torch.arange(10.0)), "val": [1, 2, 3]}
    loaders = make_loaders(cfg, data, cached=True)
    assert isinstance(loaders["train"].sampler, EpochSampler)
    first = [int(x) for (batch,) in loaders["train"] for x in batch]
    assert sorted(first) == list(range(10))
    assert first == [int(x) for (batch,) in loaders["train"] for x in batch]  # same epoch
    loaders["train"].sampler.set_epoch(1)
    assert first != [int(x) for (batch,) in loaders["train"] for x in batch]


def test_torch_threads_restores_the_previous_setting() -> None:
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before

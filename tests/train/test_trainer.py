from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from landscape.config import load_train_config
from landscape.errors import ConfigError, UserError
from landscape.models.bundle import load_bundle
from landscape.train.data_prep import auto_workers
from landscape.train.trainer import fit, plan_stages


def _cfg(data: Path, out: Path, **over: object):  # type: ignore[no-untyped-def]
    base = {
        "data": str(data),
        "out": str(out),
        "backbone": "tiny_cnn",
        "weights": "none",
        "policy": "all",
        "epochs": 2,
        "batch_size": 16,
        "progress": False,
        "num_workers": 0,
    }
    return load_train_config(None, {**base, **over})


def test_run_directory_is_complete(tiny_run: Path) -> None:
    for name in ("config.yaml", "split.csv", "metrics.json", "curves.png", "state.json"):
        assert (tiny_run / name).is_file(), name
    assert (tiny_run / "checkpoints" / "stage0" / "last.ckpt").is_file()
    assert (tiny_run / "logs" / "stage0" / "metrics.csv").is_file()
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    assert metrics["n_train"] + metrics["n_val"] + metrics["n_test"] == 80
    assert 0.0 <= metrics["test_acc"] <= 1.0
    bundle = load_bundle(tiny_run / "bundle")
    assert bundle.classes == ["coast", "desert", "forest", "glacier", "mountain"]
    assert bundle.meta["training"]["backbone"] == "tiny_cnn"
    assert len(bundle.meta["dataset"]["fingerprint"]) == 16


def test_frozen_head_uses_feature_cache_and_learns(synth_small: Path, tmp_path: Path) -> None:
    cfg = _cfg(
        synth_small,
        tmp_path / "r1",
        backbone="efficientnet_lite0",
        weights="packaged",
        policy="frozen",
        epochs=8,
        optim={"lr": 0.01},
    )
    result = fit(cfg)
    cache_root = Path(os.environ["LANDSCAPE_CACHE"]) / "features"
    chunks = list(cache_root.glob("*/chunk-*.npy"))
    assert chunks, "features were not cached"
    assert result.metrics["val_acc"] > 0.5  # ImageNet features separate the synthetic classes
    before = {p: p.stat().st_mtime_ns for p in chunks}
    fit(
        _cfg(
            synth_small,
            tmp_path / "r2",
            backbone="efficientnet_lite0",
            weights="packaged",
            policy="frozen",
            epochs=1,
        )
    )
    assert {p: p.stat().st_mtime_ns for p in cache_root.glob("*/chunk-*.npy")} == before
    # The backbone in the bundle is the untouched packaged backbone.
    bundle = load_bundle(result.bundle)
    assert bundle.meta["weights"]["source"] == "packaged"
    assert result.metrics["params"]["trainable"] == 1280 * 5 + 5


def test_fine_tune_runs_two_stages(synth_small: Path, tmp_path: Path) -> None:
    cfg = _cfg(
        synth_small,
        tmp_path / "ft",
        fine_tune={"head_epochs": 1, "unfreeze": "deepest:1"},
        epochs=1,
        augmentation="paper",
    )
    assert [s.policy for s in plan_stages(cfg)] == ["frozen", "deepest:1"]
    result = fit(cfg)
    assert [h["stage"] for h in result.history] == [0, 1]
    assert (tmp_path / "ft" / "checkpoints" / "stage1-net.safetensors").is_file()


def test_refuses_to_overwrite_a_finished_run(tiny_run: Path, synth_small: Path) -> None:
    with pytest.raises(UserError, match="already holds a finished run"):
        fit(_cfg(synth_small, tiny_run))


def test_config_errors_name_the_key(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("data: x\noptim:\n  lrr: 0.1\n")
    with pytest.raises(ConfigError, match=r"optim\.lrr: Extra inputs are not permitted"):
        load_train_config(path)
    with pytest.raises(ConfigError, match="policy"):
        load_train_config(None, {"data": "x", "policy": "deepest:0"})
    with pytest.raises(ConfigError, match="not found"):
        load_train_config(tmp_path / "missing.yaml")


def test_cache_on_requires_frozen(synth_small: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cache-features on"):
        fit(_cfg(synth_small, tmp_path / "x", cache_features="on", policy="all"))


def test_auto_workers_is_bounded() -> None:
    assert 0 <= auto_workers() <= 4


def _cli_train(data: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "landscape.cli",
        "train",
        "--data",
        str(data),
        "--backbone",
        "tiny_cnn",
        "--weights",
        "none",
        "--policy",
        "all",
        "--epochs",
        "6",
        "--batch-size",
        "8",
        "--seed",
        "5",
        "--workers",
        "0",
        "--no-progress",
        "--out",
        str(out),
        *extra,
    ]


def test_resume_after_sigkill_matches_uninterrupted(synth_small: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    subprocess.run(
        _cli_train(synth_small, tmp_path / "full"), check=True, env=env, capture_output=True
    )
    proc = subprocess.Popen(
        _cli_train(synth_small, tmp_path / "cut"),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    last = tmp_path / "cut" / "checkpoints" / "stage0" / "last.ckpt"
    deadline = time.monotonic() + 120
    while not last.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "cut" / "bundle").exists(), "killed too late: run already finished"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "landscape.cli",
            "train",
            "--resume",
            str(tmp_path / "cut"),
            "--no-progress",
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    full = json.loads((tmp_path / "full" / "metrics.json").read_text())
    cut = json.loads((tmp_path / "cut" / "metrics.json").read_text())
    for key in ("val_acc", "test_acc", "test_loss", "epochs"):
        assert cut[key] == full[key], key
    assert list((tmp_path / "cut" / "logs" / "stage0").glob("metrics.before-resume-*.csv"))
    a = load_file(str(tmp_path / "full" / "bundle" / "model.safetensors"))
    b = load_file(str(tmp_path / "cut" / "bundle" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)  # bit-identical weights


def test_two_process_ddp_on_cpu(synth_small: Path, tmp_path: Path) -> None:
    """The same command runs data-parallel (Lightning DDP over gloo); one process reports."""
    out = tmp_path / "ddp"
    done = subprocess.run(
        [sys.executable, "-m", "landscape.cli", "train", "--data", str(synth_small),
         "--backbone", "tiny_cnn", "--weights", "none", "--policy", "all", "--epochs", "1",
         "--batch-size", "8", "--workers", "0", "--devices", "2", "--strategy", "ddp",
         "--no-progress", "--json", "--out", str(out)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count('"bundle"') == 1  # only the main process printed
    assert json.loads(done.stdout)["epochs"] == 1
    assert load_bundle(out / "bundle").classes[0] == "coast"


def test_resume_refuses_a_dataset_whose_classes_changed(synth_small: Path, tmp_path: Path) -> None:
    import shutil

    data = tmp_path / "data"
    shutil.copytree(synth_small, data)
    out = tmp_path / "run"
    fit(_cfg(data, out, epochs=1))
    (out / "bundle").rename(tmp_path / "old-bundle")  # as if killed before the end
    shutil.rmtree(data / "desert")
    from landscape.errors import DatasetError
    from landscape.train.trainer import resume

    with pytest.raises(DatasetError, match=r"classes changed since this run started \(5 then"):
        resume(out)


def test_dataset_normalisation_travels_in_the_bundle(synth_small: Path, tmp_path: Path) -> None:
    """Preprocessing is read from the bundle, so a mismatch at inference is impossible."""
    from landscape.data.stats import channel_stats
    from landscape.inference import Predictor

    result = fit(_cfg(synth_small, tmp_path / "n", epochs=1, normalize="dataset"))
    bundle = load_bundle(result.bundle)
    train = [
        p
        for p in (tmp_path / "n" / "split.csv").read_text().splitlines()[1:]
        if p.endswith(",train")
    ]
    mean, std, _ = channel_stats([(tmp_path / "n" / line.split(",")[0]) for line in train])
    assert bundle.preprocessing.mean == pytest.approx(tuple(mean))
    assert bundle.preprocessing.std == pytest.approx(tuple(std))
    predictor = Predictor.from_bundle(result.bundle)
    # A flat grey image comes out of the predictor's preprocessing as (v/255 - mean) / std.
    from PIL import Image

    grey = predictor.transform(Image.new("RGB", (64, 48), (128, 128, 128)))
    expected = [(128 / 255 - m) / s for m, s in zip(mean, std, strict=True)]
    assert grey.mean(dim=(1, 2)).tolist() == pytest.approx(expected, rel=1e-4)


def _tensorboard_scalars(event_file: Path) -> dict[str, list[float]]:
    """Scalars of a TensorBoard event file (TFRecord: u64 length, u32 crc, data, u32 crc)."""
    import struct

    from tensorboardX.proto.event_pb2 import Event

    data = event_file.read_bytes()
    scalars: dict[str, list[float]] = {}
    pos = 0
    while pos < len(data):
        (length,) = struct.unpack("<Q", data[pos : pos + 8])
        event = Event.FromString(data[pos + 12 : pos + 12 + length])
        pos += 12 + length + 4
        for value in event.summary.value:
            scalars.setdefault(value.tag, []).append(value.simple_value)
    return scalars


def test_tensorboard_logs_every_epoch_next_to_the_csv(
    run_cli, synth_small: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "tb"
    res = run_cli(
        "train", "--data", synth_small, "--backbone", "tiny_cnn", "--weights", "none",
        "--policy", "all", "--epochs", "3", "--batch-size", "16", "--workers", "0",
        "--tensorboard", "--no-progress", "--out", out,
    )  # fmt: skip
    assert res.code == 0, res.err
    # Lightning closes the writer after fit and opens another for the test metrics.
    scalars: dict[str, list[float]] = {}
    for events in sorted((out / "tensorboard" / "stage0").glob("events.out.tfevents.*")):
        for tag, values in _tensorboard_scalars(events).items():
            scalars.setdefault(tag, []).extend(values)
    assert len(scalars["val_acc"]) == 3  # one value per epoch
    assert all(0.0 <= v <= 1.0 for v in scalars["val_acc"])
    assert len(scalars["test_acc"]) == 1
    assert (out / "logs" / "stage0" / "metrics.csv").is_file()  # CSV stays the run's history


_LIMITED = """
import resource, sys
limit = int(float(sys.argv[1]) * 2**30)
resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
from landscape.cli import main
sys.exit(main(sys.argv[2:]))
"""


def test_out_of_memory_batch_gives_one_line_and_the_run_can_be_retried(
    run_cli, synth_small: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """A real allocation failure: the process may use 2.2 GiB of data, a batch of 64 needs more."""
    script = tmp_path / "limited.py"
    script.write_text(_LIMITED)
    out = tmp_path / "run"
    args = ["train", "--data", str(synth_small), "--backbone", "efficientnet_lite0",
            "--weights", "none", "--policy", "all", "--epochs", "1", "--workers", "0",
            "--no-progress", "--out", str(out)]  # fmt: skip
    proc = subprocess.run(
        [sys.executable, str(script), "2.2", *args, "--batch-size", "64"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    error_lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert error_lines == ["error: out of memory with batch size 64 — try --batch-size 32."]
    assert not (out / "bundle").exists()
    # Nothing half-written blocks the retry with a smaller batch into the same directory.
    res = run_cli(*args, "--batch-size", "8", "--max-per-class", "6")
    assert res.code == 0, res.err
    assert load_bundle(out / "bundle").classes == [
        "coast", "desert", "forest", "glacier", "mountain"
    ]  # fmt: skip


def test_val_acc_is_the_saved_models(synth_small: Path, tmp_path: Path) -> None:
    """metrics.json reports the validation accuracy of the bundle's model (the last stage's
    best checkpoint), re-measured here through the Predictor on the run's val split."""
    import csv

    from landscape.inference.predictor import Predictor

    cfg = _cfg(
        synth_small,
        tmp_path / "ft",
        backbone="efficientnet_lite0",
        weights="packaged",
        fine_tune={"head_epochs": 2, "unfreeze": "deepest:1"},
        epochs=1,
        optim={"lr": 0.01},
    )
    result = fit(cfg)
    by_stage = result.metrics["val_acc_by_stage"]
    assert len(by_stage) == 2 and result.metrics["val_acc"] == by_stage[-1]
    last_stage = [h["val_acc"] for h in result.history if h["stage"] == 1]
    assert result.metrics["val_acc"] == pytest.approx(max(last_stage))
    with open(tmp_path / "ft" / "split.csv") as fh:
        val = [(r["path"], r["label"]) for r in csv.DictReader(fh) if r["split"] == "val"]
    predictions = Predictor.from_bundle(result.bundle).predict([Path(p) for p, _ in val])
    measured = sum(p.label == label for p, (_, label) in zip(predictions, val, strict=True))
    assert measured / len(val) == pytest.approx(result.metrics["val_acc"], abs=1e-6)
    saved = json.loads((tmp_path / "ft" / "metrics.json").read_text())
    assert saved["val_acc"] == result.metrics["val_acc"]
    assert load_bundle(result.bundle).meta["metrics"]["val_acc"] == result.metrics["val_acc"]


def test_out_of_memory_is_recognised_by_type_not_by_wording() -> None:
    from landscape.train.trainer import _is_out_of_memory

    assert _is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory"))
    assert _is_out_of_memory(MemoryError())
    try:
        torch.empty(1 << 62, dtype=torch.uint8)
    except RuntimeError as exc:  # the CPU allocator's own failure
        assert _is_out_of_memory(exc)
    # Errors that merely mention memory are bugs to show, not batch sizes to halve.
    assert not _is_out_of_memory(RuntimeError("pin_memory thread died"))
    assert not _is_out_of_memory(ValueError("memory"))

"""``fit(config) -> RunResult``: a whole training run, from dataset folder to model bundle.

A run directory holds ``config.yaml`` (resolved), ``split.csv``, ``logs/`` (CSV per stage),
``checkpoints/`` (best and last per stage, for ``--resume``), ``curves.png``, ``metrics.json`` and
``bundle/``. Stages run in order (e.g. head only, then the deepest blocks); a frozen stage with a
deterministic transform trains the head on cached backbone features.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch.utils.data import DataLoader, Sampler, TensorDataset

from landscape.config import TrainConfig, load_train_config
from landscape.data.datasets import DatasetIndex, ImageDataset, Sample, load_dataset, write_manifest
from landscape.data.splits import assign_splits
from landscape.data.stats import channel_stats
from landscape.data.transforms import Preprocessing, batch_mixer, eval_transform, train_transform
from landscape.errors import ConfigError, DatasetError, UserError
from landscape.models.bundle import save_bundle
from landscape.models.freezing import parse_policy
from landscape.models.net import LandscapeNet, create_model
from landscape.models.registry import get_backbone_info
from landscape.models.weights import WeightsRecord, pretrained_preprocessing

from .feature_cache import FeatureCache, collate_skip_none
from .module import ClassifierModule

__all__ = [
    "RunResult",
    "Stage",
    "auto_workers",
    "extract_split_features",
    "fit",
    "plan_stages",
    "read_history",
    "resume",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stage:
    """One phase of training with its own freezing policy and epoch budget."""

    policy: str
    epochs: int


@dataclass
class RunResult:
    """What a finished run produced."""

    run_dir: Path
    bundle: Path
    metrics: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    #: False in the extra processes of a data-parallel run (they write and print nothing).
    is_main: bool = True


def plan_stages(cfg: TrainConfig) -> list[Stage]:
    """The stages of a run: one, or head-only then unfreeze (``fine_tune``)."""
    if cfg.fine_tune is not None:
        return [
            Stage("frozen", cfg.fine_tune.head_epochs),
            Stage(cfg.fine_tune.unfreeze, cfg.epochs),
        ]
    return [Stage(cfg.policy, cfg.epochs)]


def auto_workers() -> int:
    """DataLoader workers: one core left to the main process, at most 4, ≥ 1.5 GB RAM each."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        available = 8 << 30
    by_memory = int(available // (1.5 * (1 << 30)))
    return max(0, min((cores or 1) - 1, 4, by_memory))


class _EpochSampler(Sampler[Any]):
    """Shuffles with ``(seed, epoch)`` so a resumed run sees the same order (Lightning calls
    ``set_epoch`` on samplers that have it). With ``keyed`` it yields ``(index, seed, epoch)``
    so :class:`ImageDataset` seeds each item's augmentation from those numbers."""

    def __init__(self, n: int, seed: int, *, keyed: bool = False, epoch: int = 0) -> None:
        self.n = n
        self.seed = seed
        self.keyed = keyed
        self.epoch = epoch

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Any:
        # A generator: the epoch is read at the first batch, after the epoch-start hooks ran
        # (a resumed run may build its iterator before Lightning calls set_epoch).
        rng = np.random.default_rng([self.seed, self.epoch])
        for i in rng.permutation(self.n).tolist():
            yield (i, self.seed, self.epoch) if self.keyed else i

    def __len__(self) -> int:
        return self.n


def _subsample(samples: list[Sample], per_class: int | None, seed: int) -> list[Sample]:
    if per_class is None:
        return samples
    rng = np.random.default_rng(seed)
    by_class: dict[str, list[Sample]] = {}
    for s in samples:
        by_class.setdefault(s.label, []).append(s)
    kept: list[Sample] = []
    for label in sorted(by_class):
        items = by_class[label]
        order = rng.permutation(len(items))[:per_class]
        kept.extend(items[i] for i in sorted(order.tolist()))
    return kept


def _prepare_data(cfg: TrainConfig, run_dir: Path) -> tuple[DatasetIndex, dict[str, list[Sample]]]:
    index = load_dataset(cfg.data)
    index = assign_splits(index, val=cfg.val_fraction, test=cfg.test_fraction, seed=cfg.seed)
    write_manifest(index, run_dir / "split.csv", extra={"seed": cfg.seed})
    splits = {
        name: [s for s in index.samples if s.split == name] for name in ("train", "val", "test")
    }
    splits["train"] = _subsample(splits["train"], cfg.max_per_class, cfg.seed)
    if not splits["train"]:
        raise DatasetError("the train split is empty", path=cfg.data, fix="add images")
    if not splits["val"]:
        raise DatasetError(
            "the validation split is empty",
            path=cfg.data,
            fix="use --val-fraction > 0 or more images",
        )
    return index, splits


def _preprocessing(
    net: LandscapeNet, record: WeightsRecord, cfg: TrainConfig, train: list[Sample]
) -> Preprocessing:
    pre = pretrained_preprocessing(net.info, record)
    if cfg.normalize == "dataset":
        m, s, _ = channel_stats([x.path for x in train])
        pre = pre.model_copy(update={"mean": (m[0], m[1], m[2]), "std": (s[0], s[1], s[2])})
    return pre


def _class_weights(train: list[Sample], classes: list[str]) -> torch.Tensor:
    counts = np.array([sum(1 for s in train if s.label == c) for c in classes], dtype=np.float64)
    weights = counts.sum() / (len(classes) * np.maximum(counts, 1))
    return torch.tensor(weights, dtype=torch.float32)


def _check_loggers(cfg: TrainConfig) -> None:
    """Fail before anything is written when an optional logger's package is missing."""
    import importlib.util

    if cfg.tensorboard and not any(
        importlib.util.find_spec(name) for name in ("tensorboard", "tensorboardX")
    ):
        raise ConfigError(
            "--tensorboard needs the tensorboard or tensorboardX package",
            fix="pip install 'landscape[tensorboard]', or train without --tensorboard",
        )


def _loggers(cfg: TrainConfig, run_dir: Path, stage_i: int) -> list[Any]:
    """CSV logs (the run history is read from them), plus TensorBoard event files on request."""
    from lightning.pytorch.loggers import CSVLogger

    loggers: list[Any] = [CSVLogger(run_dir, name="logs", version=f"stage{stage_i}")]
    if cfg.tensorboard:
        from lightning.pytorch.loggers import TensorBoardLogger

        loggers.append(
            TensorBoardLogger(
                run_dir, name="tensorboard", version=f"stage{stage_i}", default_hp_metric=False
            )
        )
    return loggers


def _trainer(
    cfg: TrainConfig,
    run_dir: Path,
    stage_i: int,
    epochs: int,
    monitor_val: bool,
    extra_callbacks: list[Any] | None = None,
) -> Any:
    import lightning as L
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

    callbacks: list[Any] = [
        ModelCheckpoint(
            dirpath=run_dir / "checkpoints" / f"stage{stage_i}",
            filename="best",
            monitor="val_acc",
            mode="max",
            save_last=True,
            save_top_k=1,
        )
    ]
    if cfg.early_stopping and monitor_val:
        callbacks.append(EarlyStopping(monitor="val_loss", patience=cfg.early_stopping))
    if cfg.progress:
        from lightning.pytorch.callbacks import RichProgressBar

        callbacks.append(RichProgressBar(leave=True))
    callbacks.extend(extra_callbacks or [])
    return L.Trainer(
        max_epochs=epochs,
        accelerator=cfg.accelerator,
        devices=cfg.devices,
        strategy=cfg.strategy,
        precision="bf16-mixed" if cfg.precision == "bf16" else "32-true",
        logger=_loggers(cfg, run_dir, stage_i),
        callbacks=callbacks,
        enable_progress_bar=cfg.progress,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        log_every_n_steps=1,
        gradient_clip_val=cfg.optim.grad_clip,
        deterministic="warn",
        default_root_dir=run_dir,
    )


def extract_split_features(
    net: LandscapeNet,
    record: WeightsRecord,
    pre: Preprocessing,
    splits: dict[str, list[Sample]],
    classes: list[str],
    cfg: TrainConfig,
    *,
    layer: str | None = None,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Backbone features and class indices of every non-empty split, through the cache.

    Files that fail to decode are left out. ``layer`` (a truncated backbone, for the classic
    baseline) joins the cache key; without it the key is the pooled-feature one.
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    key: dict[str, Any] = {
        "backbone": net.info.name,
        "weights": record.sha256 or f"{record.source}:seed{cfg.seed}",
        "preprocessing": pre.model_dump(),
        "state": _state_fingerprint(net),
    }
    if layer is not None:
        key["layer"] = layer
    cache = FeatureCache(key)
    net.eval()
    model = net.to(memory_format=torch.channels_last)

    def extractor(x: torch.Tensor) -> torch.Tensor:
        return model.features(x.contiguous(memory_format=torch.channels_last))

    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    transform = eval_transform(pre)
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        disable=not cfg.progress,
    ) as bar:
        for name, samples in splits.items():
            if not samples:
                continue
            task = bar.add_task(f"features {name}", total=len(samples))
            feats, ok = cache.features(
                samples,
                functools.partial(ImageDataset, classes=classes, transform=transform),
                extractor,
                batch_size=cfg.batch_size,
                num_workers=cfg.num_workers if cfg.num_workers is not None else auto_workers(),
                progress=functools.partial(bar.advance, task),
            )
            targets = np.array([classes.index(s.label) for s in samples])
            out[name] = (feats[ok], targets[ok])
    return out


def _state_fingerprint(net: LandscapeNet) -> str:
    # Random-init backbones (weights none) differ per seed: hash a few tensors to key the cache.
    import hashlib

    digest = hashlib.sha256()
    for i, tensor in enumerate(net.backbone.state_dict().values()):
        if i > 8:
            break
        digest.update(tensor.detach().float().numpy().tobytes()[:4096])
    return digest.hexdigest()[:16]


def _loaders(
    cfg: TrainConfig, data: dict[str, Any], *, cached: bool, start_epoch: int = 0
) -> dict[str, DataLoader[Any]]:
    workers = 0 if cached else (cfg.num_workers if cfg.num_workers is not None else auto_workers())
    loaders: dict[str, DataLoader[Any]] = {}
    for name, dataset in data.items():
        train = name == "train"
        loaders[name] = DataLoader(
            dataset,
            batch_size=cfg.batch_size,
            sampler=_EpochSampler(len(dataset), cfg.seed, keyed=not cached, epoch=start_epoch)
            if train
            else None,
            # A private generator: creating an iterator must not consume the global RNG, or
            # dropout would differ between a resumed and an uninterrupted run.
            generator=torch.Generator().manual_seed(cfg.seed),
            num_workers=workers,
            persistent_workers=workers > 0,
            collate_fn=None if cached else collate_skip_none,
            drop_last=train
            and len(dataset) > cfg.batch_size
            and len(dataset) % cfg.batch_size == 1,
        )
    return loaders


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _distributed(cfg: TrainConfig) -> bool:
    return cfg.strategy.startswith("ddp") or cfg.devices not in (1, "1", "auto")


def _is_main_process() -> bool:
    from lightning.pytorch.utilities import rank_zero_only

    return int(getattr(rank_zero_only, "rank", 0)) == 0


def _resume_epoch(checkpoint: Path) -> int:
    """The epoch a run resumes at: the one after the checkpoint's (saved at epoch end)."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    return int(state.get("epoch", -1)) + 1


def read_history(run_dir: Path, stages: int | None = None) -> list[dict[str, Any]]:
    """Per-epoch metrics of a run directory's CSV logs, stages concatenated, resumes merged."""
    import csv

    if stages is None:
        stages = len(list((run_dir / "logs").glob("stage*")))

    history: list[dict[str, Any]] = []
    offset = 0
    for i in range(stages):
        # metrics.csv plus the logs kept from before each resume, oldest first.
        paths = sorted((run_dir / "logs" / f"stage{i}").glob("metrics*.csv"), key=_log_order)
        rows: dict[int, dict[str, Any]] = {}
        for row in (r for p in paths for r in csv.DictReader(p.read_text().splitlines())):
            if any(row.get(k) for k in ("test_acc", "test_loss")):
                continue  # the final test row is not an epoch of training
            epoch = int(float(row["epoch"]))
            merged = rows.setdefault(epoch, {"stage": i, "epoch": offset + epoch})
            merged.update(
                {
                    k: float(v)
                    for k, v in row.items()
                    if v not in ("", None) and k not in ("epoch", "step")
                }
            )
        history.extend(rows[k] for k in sorted(rows))
        offset += len(rows)
    return history


def _log_order(path: Path) -> tuple[int, str]:
    return (1, "") if path.name == "metrics.csv" else (0, path.name)


def _keep_log_before_resume(run_dir: Path, stage: int) -> None:
    # Lightning's CSVLogger rewrites metrics.csv when a run resumes; keep the epochs logged so far.
    log = run_dir / "logs" / f"stage{stage}" / "metrics.csv"
    if log.is_file():
        n = len(list(log.parent.glob("metrics.before-resume-*.csv")))
        log.rename(log.with_name(f"metrics.before-resume-{n:03d}.csv"))


def _plot_curves(history: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for key, ax in (("loss", axes[0]), ("acc", axes[1])):
        for split, style in (("train", "-o"), ("val", "-s")):
            pts = [(h["epoch"], h[f"{split}_{key}"]) for h in history if f"{split}_{key}" in h]
            if pts:
                ax.plot(*zip(*pts, strict=True), style, label=split, markersize=3)
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("training curves")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _save_state(run_dir: Path, state: dict[str, Any]) -> None:
    tmp = run_dir / "state.json.tmp"
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(run_dir / "state.json")


def fit(
    cfg: TrainConfig, *, resume_run: bool = False, callbacks: list[Any] | None = None
) -> RunResult:
    """Train per ``cfg``; write the run directory; return metrics and the bundle's path.

    ``callbacks``: extra Lightning callbacks given to every stage's trainer (e.g. Optuna
    pruning in ``landscape tune``).
    """
    import lightning as L
    from safetensors.torch import load_file, save_file

    if cfg.head.kind in ("svm", "logreg"):
        from .classic import fit_classic  # scikit-learn heads are fitted, not trained

        return fit_classic(cfg)
    # Cheap checks first: a typo must not leave a half-made run directory behind.
    get_backbone_info(cfg.backbone)
    for stage in plan_stages(cfg):
        parse_policy(stage.policy)
    _check_loggers(cfg)
    if not Path(cfg.data).exists():
        raise DatasetError("does not exist", path=cfg.data, fix="check --data")
    run_dir = Path(cfg.out)
    state: dict[str, Any] = {"completed_stages": 0}
    if resume_run and (run_dir / "state.json").is_file():
        state = json.loads((run_dir / "state.json").read_text())
    elif run_dir.exists() and (run_dir / "bundle").exists() and not resume_run:
        raise UserError(
            "run directory already holds a finished run",
            path=run_dir,
            fix="choose another --out, delete it, or --resume it",
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(
        yaml.safe_dump(json.loads(cfg.model_dump_json()), sort_keys=False)
    )
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*LeafSpec.*")
    warnings.filterwarnings("ignore", ".*Checkpoint directory .* exists and is not empty.*")
    warnings.filterwarnings("ignore", ".*Using `DistributedSampler` with the dataloaders.*")
    warnings.filterwarnings("ignore", ".*module\\(s\\) in eval mode.*")
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)

    started = time.perf_counter()
    index, splits = _prepare_data(cfg, run_dir)
    classes = list(index.classes)
    if state.get("classes", classes) != classes:
        raise DatasetError(
            f"the dataset's classes changed since this run started "
            f"({len(state['classes'])} then: {', '.join(state['classes'])}; "
            f"{len(classes)} now: {', '.join(classes)})",
            path=cfg.data,
            fix="resume with the original dataset or start a new run with another --out",
        )
    state["classes"] = classes
    stages = plan_stages(cfg)
    net, record = create_model(
        cfg.backbone, len(classes), weights=cfg.weights, sha256=cfg.weights_sha256, head=cfg.head
    )
    pre = _preprocessing(net, record, cfg, splits["train"])
    weights_class = _class_weights(splits["train"], classes) if cfg.optim.class_weights else None
    mixer = batch_mixer(len(classes), cfg.mixup, cfg.cutmix)
    test_metrics: dict[str, float] = {}

    for i, stage in enumerate(stages):
        policy = parse_policy(stage.policy)
        net.freeze(policy, cfg.bn)
        done_file = run_dir / "checkpoints" / f"stage{i}-net.safetensors"
        if i < state["completed_stages"] and done_file.is_file():
            net.load_state_dict(load_file(str(done_file)))
            continue
        cached = (
            not _distributed(cfg)
            and policy.trainable_blocks == 0
            and cfg.augmentation == "none"
            and mixer is None
            and cfg.cache_features != "off"
        )
        if cfg.cache_features == "on" and not cached:
            raise ConfigError(
                "--cache-features on needs a frozen backbone, augmentation none, no MixUp/CutMix "
                "and a single process",
                fix="use --cache-features auto",
            )
        if cached:
            data: dict[str, Any] = {
                name: TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
                for name, (x, y) in extract_split_features(
                    net, record, pre, splits, classes, cfg
                ).items()
            }
            module_model: torch.nn.Module = net.head
        else:
            train_tf = train_transform(pre, cfg.augmentation)
            eval_tf = eval_transform(pre)
            data = {
                name: ImageDataset(samples, classes, train_tf if name == "train" else eval_tf)
                for name, samples in splits.items()
                if samples
            }
            module_model = net
        last = run_dir / "checkpoints" / f"stage{i}" / "last.ckpt"
        ckpt = str(last) if resume_run and last.is_file() else None
        # Lightning builds the first iterator before calling set_epoch: start at the right epoch.
        start_epoch = _resume_epoch(last) if ckpt else 0
        if ckpt:
            _keep_log_before_resume(run_dir, i)
        loaders = _loaders(cfg, data, cached=cached, start_epoch=start_epoch)
        module = ClassifierModule(
            module_model,
            len(classes),
            cfg.optim,
            class_weights=weights_class,
            mixer=None if cached else mixer,
            seed=cfg.seed + i,
        )
        trainer = _trainer(
            cfg, run_dir, i, stage.epochs, monitor_val=True, extra_callbacks=callbacks
        )
        try:
            # A head on cached features is a few small matmuls: one thread beats two that
            # fight each other (and any other job on the machine).
            with _torch_threads(1 if cached else torch.get_num_threads()):
                trainer.fit(module, loaders["train"], loaders["val"], ckpt_path=ckpt)
        except RuntimeError as exc:
            if "memory" in str(exc).lower():
                raise UserError(
                    f"out of memory with batch size {cfg.batch_size}",
                    fix=f"try --batch-size {max(cfg.batch_size // 2, 1)}",
                ) from exc
            raise
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        if best:
            checkpoint = torch.load(best, map_location="cpu", weights_only=True)
            module.load_state_dict(checkpoint["state_dict"])
        if "test" in loaders and i == len(stages) - 1:
            results = trainer.test(module, loaders["test"], verbose=False)
            test_metrics = {k: float(v) for k, v in (results[0] if results else {}).items()}
        if not trainer.is_global_zero:
            continue  # the main process writes checkpoints and the bundle
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(done_file))
        state["completed_stages"] = i + 1
        _save_state(run_dir, state)

    if not _is_main_process():
        return RunResult(run_dir, run_dir / "bundle", {}, [], is_main=False)

    history = read_history(run_dir, len(stages))
    if history:
        _plot_curves(history, run_dir / "curves.png")
    val_acc = max((h["val_acc"] for h in history if "val_acc" in h), default=float("nan"))
    metrics = {
        "val_acc": val_acc,
        "test_acc": test_metrics.get("test_acc"),
        "test_loss": test_metrics.get("test_loss"),
        "train_seconds": round(time.perf_counter() - started, 2),
        "epochs": sum(s.epochs for s in stages),
        "n_train": len(splits["train"]),
        "n_val": len(splits["val"]),
        "n_test": len(splits["test"]),
        "params": net.param_counts(),
    }
    bundle = save_bundle(
        run_dir / "bundle",
        net,
        classes=classes,
        preprocessing=pre,
        head=cfg.head,
        weights=record.to_dict(),
        extra=run_provenance(cfg, index, metrics),
    )
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return RunResult(run_dir, bundle, metrics, history)


def run_provenance(
    cfg: TrainConfig, index: DatasetIndex, metrics: dict[str, Any]
) -> dict[str, Any]:
    """What a bundle records of its run: resolved config, dataset fingerprint, metrics."""
    return {
        "training": json.loads(cfg.model_dump_json()),
        "dataset": {
            "root": str(Path(cfg.data).resolve()),
            "fingerprint": index.fingerprint(),
            "split_seed": cfg.seed,
        },
        "metrics": metrics,
    }


def resume(run_dir: Path, overrides: dict[str, Any] | None = None) -> RunResult:
    """Continue an interrupted run from its last checkpoint (config read from the run)."""
    config = run_dir / "config.yaml"
    if not config.is_file():
        raise UserError("not a run directory (no config.yaml)", path=run_dir, fix="check the path")
    cfg = load_train_config(config, {**(overrides or {}), "out": str(run_dir)})
    return fit(cfg, resume_run=True)


ProgressFn = Callable[[int], None]

"""``fit(config) -> RunResult``: a whole training run, from dataset folder to model bundle.

A run directory holds ``config.yaml`` (resolved), ``split.csv``, ``logs/`` (CSV per stage),
``checkpoints/`` (best and last per stage, for ``--resume``), ``curves.png``, ``metrics.json`` and
``bundle/`` (:mod:`.run_files`). Stages run in order (e.g. head only, then the deepest blocks);
a frozen stage with a deterministic transform trains the head on cached backbone features.
The reported ``val_acc`` is that of the model the bundle holds: the best checkpoint (by
validation accuracy) of the last stage.
"""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import TensorDataset

from landscape.config import TrainConfig, load_train_config
from landscape.data.datasets import ImageDataset
from landscape.data.transforms import Preprocessing, batch_mixer, eval_transform, train_transform
from landscape.errors import ConfigError, DatasetError, UserError
from landscape.models.freezing import parse_policy
from landscape.models.net import LandscapeNet, create_model
from landscape.models.registry import get_backbone_info
from landscape.models.weights import WeightsRecord

from .data_prep import (
    PreparedData,
    class_weights,
    extract_split_features,
    make_loaders,
    prepare_data,
    resolve_preprocessing,
    torch_threads,
)
from .module import ClassifierModule
from .run_files import (
    RunResult,
    check_new_run_dir,
    keep_log_before_resume,
    plot_curves,
    read_history,
    read_state,
    save_state,
    write_config,
    write_run_outputs,
)

__all__ = ["Stage", "fit", "plan_stages", "resume"]

# Lightning's advice that does not apply to these runs (small CPU datasets, frozen blocks in
# eval mode on purpose, checkpoints of a resumed run), silenced only while a run trains.
_QUIET_WARNINGS = (
    ".*does not have many workers.*",
    ".*LeafSpec.*",
    ".*Checkpoint directory .* exists and is not empty.*",
    ".*Using `DistributedSampler` with the dataloaders.*",
    ".*module\\(s\\) in eval mode.*",
)
_LIGHTNING_LOGGERS = ("lightning.pytorch", "lightning.fabric", "lightning")


@dataclass(frozen=True)
class Stage:
    """One phase of training with its own freezing policy and epoch budget."""

    policy: str
    epochs: int


def plan_stages(cfg: TrainConfig) -> list[Stage]:
    """The stages of a run: one, or head-only then unfreeze (``fine_tune``)."""
    if cfg.fine_tune is not None:
        return [
            Stage("frozen", cfg.fine_tune.head_epochs),
            Stage(cfg.fine_tune.unfreeze, cfg.epochs),
        ]
    return [Stage(cfg.policy, cfg.epochs)]


@contextlib.contextmanager
def _quiet_lightning() -> Iterator[None]:
    """Lightning's info banners and inapplicable warnings off for the block, then restored."""
    levels = {name: logging.getLogger(name).level for name in _LIGHTNING_LOGGERS}
    with warnings.catch_warnings():
        for pattern in _QUIET_WARNINGS:
            warnings.filterwarnings("ignore", pattern)
        for name in _LIGHTNING_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
        try:
            yield
        finally:
            for name, level in levels.items():
                logging.getLogger(name).setLevel(level)


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


def _distributed(cfg: TrainConfig) -> bool:
    return cfg.strategy.startswith("ddp") or cfg.devices not in (1, "1", "auto")


def _is_main_process() -> bool:
    from lightning.pytorch.utilities import rank_zero_only

    return int(getattr(rank_zero_only, "rank", 0)) == 0


def _resume_epoch(checkpoint: Path) -> int:
    """The epoch a run resumes at: the one after the checkpoint's (saved at epoch end)."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    return int(state.get("epoch", -1)) + 1


@dataclass
class _Model:
    net: LandscapeNet
    record: WeightsRecord
    pre: Preprocessing


def _new_model(cfg: TrainConfig, data: PreparedData) -> _Model:
    """The network a run starts from: a trained bundle (``init``) or ``weights`` + a new head."""
    if cfg.init is not None:
        from .init_from import start_from_bundle

        return _Model(*start_from_bundle(cfg.init, cfg.backbone, data.classes, cfg.head))
    net, record = create_model(
        cfg.backbone,
        len(data.classes),
        weights=cfg.weights,
        sha256=cfg.weights_sha256,
        head=cfg.head,
    )
    return _Model(net, record, resolve_preprocessing(net, record, cfg, data.splits["train"]))


def _check_cheap(cfg: TrainConfig) -> None:
    # Cheap checks first: a typo must not leave a half-made run directory behind.
    get_backbone_info(cfg.backbone)
    for stage in plan_stages(cfg):
        parse_policy(stage.policy)
    _check_loggers(cfg)
    if not Path(cfg.data).exists():
        raise DatasetError("does not exist", path=cfg.data, fix="check --data")


def _check_classes(state: dict[str, Any], classes: list[str], cfg: TrainConfig) -> None:
    if state.get("classes", classes) != classes:
        raise DatasetError(
            f"the dataset's classes changed since this run started "
            f"({len(state['classes'])} then: {', '.join(state['classes'])}; "
            f"{len(classes)} now: {', '.join(classes)})",
            path=cfg.data,
            fix="resume with the original dataset or start a new run with another --out",
        )


def _stage_data(
    cfg: TrainConfig, model: _Model, data: PreparedData, cached: bool
) -> tuple[dict[str, Any], torch.nn.Module]:
    """Datasets of one stage and the module it trains (the head alone on cached features)."""
    if cached:
        features = extract_split_features(
            model.net, model.record, model.pre, data.splits, data.classes, cfg
        )
        tensors = {
            name: TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
            for name, (x, y) in features.items()
        }
        return tensors, model.net.head
    train_tf = train_transform(model.pre, cfg.augmentation)
    eval_tf = eval_transform(model.pre)
    images = {
        name: ImageDataset(samples, data.classes, train_tf if name == "train" else eval_tf)
        for name, samples in data.splits.items()
        if samples
    }
    return images, model.net


def _is_out_of_memory(exc: BaseException) -> bool:
    """An allocation failure: by type where torch has one (CUDA, MPS, Python's MemoryError).

    The CPU allocator raises a bare ``RuntimeError`` (an ``enforce`` failure), so there the
    allocator's own message is matched — never any error that merely mentions memory.
    """
    if isinstance(exc, torch.OutOfMemoryError | MemoryError):
        return True
    return isinstance(exc, RuntimeError) and "DefaultCPUAllocator: can't allocate memory" in str(
        exc
    )


def _out_of_memory(cfg: TrainConfig) -> UserError:
    return UserError(
        f"out of memory with batch size {cfg.batch_size}",
        fix=f"try --batch-size {max(cfg.batch_size // 2, 1)}",
    )


def _run_stages(
    cfg: TrainConfig,
    model: _Model,
    data: PreparedData,
    state: dict[str, Any],
    *,
    resume_run: bool,
    callbacks: list[Any] | None,
) -> dict[str, float]:
    """Train every stage not yet completed; return the last stage's test metrics.

    After each stage the best checkpoint (by validation accuracy) is loaded into ``model.net``
    and its validation accuracy recorded in ``state["stage_val_acc"]``.
    """
    from safetensors.torch import load_file, save_file

    run_dir = Path(cfg.out)
    stages = plan_stages(cfg)
    weights_class = (
        class_weights(data.splits["train"], data.classes) if cfg.optim.class_weights else None
    )
    mixer = batch_mixer(len(data.classes), cfg.mixup, cfg.cutmix)
    test_metrics: dict[str, float] = {}
    for i, stage in enumerate(stages):
        policy = parse_policy(stage.policy)
        model.net.freeze(policy, cfg.bn)
        done_file = run_dir / "checkpoints" / f"stage{i}-net.safetensors"
        if i < state["completed_stages"] and done_file.is_file():
            model.net.load_state_dict(load_file(str(done_file)))
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
        datasets, trained = _stage_data(cfg, model, data, cached)
        last = run_dir / "checkpoints" / f"stage{i}" / "last.ckpt"
        ckpt = str(last) if resume_run and last.is_file() else None
        # Lightning builds the first iterator before calling set_epoch: start at the right epoch.
        start_epoch = _resume_epoch(last) if ckpt else 0
        if ckpt:
            keep_log_before_resume(run_dir, i)
        loaders = make_loaders(cfg, datasets, cached=cached, start_epoch=start_epoch)
        module = ClassifierModule(
            trained,
            len(data.classes),
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
            with torch_threads(1 if cached else torch.get_num_threads()):
                trainer.fit(module, loaders["train"], loaders["val"], ckpt_path=ckpt)
        except (RuntimeError, MemoryError) as exc:
            if _is_out_of_memory(exc):
                raise _out_of_memory(cfg) from exc
            raise
        checkpoint_cb = trainer.checkpoint_callback
        best = checkpoint_cb.best_model_path if checkpoint_cb else ""
        if best:
            checkpoint = torch.load(best, map_location="cpu", weights_only=True)
            module.load_state_dict(checkpoint["state_dict"])
        score = checkpoint_cb.best_model_score if checkpoint_cb else None
        state.setdefault("stage_val_acc", {})[str(i)] = float(score) if score is not None else None
        if "test" in loaders and i == len(stages) - 1:
            results = trainer.test(module, loaders["test"], verbose=False)
            test_metrics = {k: float(v) for k, v in (results[0] if results else {}).items()}
        if not trainer.is_global_zero:
            continue  # the main process writes checkpoints and the bundle
        save_file({k: v.contiguous() for k, v in model.net.state_dict().items()}, str(done_file))
        state["completed_stages"] = i + 1
        state["test_metrics"] = test_metrics
        save_state(run_dir, state)
    return test_metrics or state.get("test_metrics", {})


def fit(
    cfg: TrainConfig, *, resume_run: bool = False, callbacks: list[Any] | None = None
) -> RunResult:
    """Train per ``cfg``; write the run directory; return metrics and the bundle's path.

    ``callbacks``: extra Lightning callbacks given to every stage's trainer (e.g. Optuna
    pruning in ``landscape tune``). ``svm``/``logreg`` heads are fitted by
    :func:`landscape.train.classic.fit_classic` instead.
    """
    import lightning as L

    if cfg.head.classic:
        from .classic import fit_classic  # scikit-learn heads are fitted, not trained

        return fit_classic(cfg)
    _check_cheap(cfg)
    run_dir = Path(cfg.out)
    state: dict[str, Any] = read_state(run_dir) if resume_run else {"completed_stages": 0}
    if not resume_run:
        check_new_run_dir(run_dir)
    write_config(run_dir, cfg)
    started = time.perf_counter()
    with _quiet_lightning():
        L.seed_everything(cfg.seed, workers=True, verbose=False)
        data = prepare_data(cfg, run_dir)
        _check_classes(state, data.classes, cfg)
        state["classes"] = data.classes
        model = _new_model(cfg, data)
        net = model.net
        test_metrics = _run_stages(
            cfg, model, data, state, resume_run=resume_run, callbacks=callbacks
        )
    if not _is_main_process():
        return RunResult(run_dir, run_dir / "bundle", {}, [], is_main=False)
    stages = plan_stages(cfg)
    history = read_history(run_dir, len(stages))
    if history:
        plot_curves(history, run_dir / "curves.png")
    by_stage: dict[str, float | None] = state.get("stage_val_acc", {})
    metrics = {
        # The saved model's: the best checkpoint of the last stage, not a max over all stages.
        "val_acc": by_stage.get(str(len(stages) - 1)),
        "val_acc_by_stage": [by_stage.get(str(i)) for i in range(len(stages))],
        "test_acc": test_metrics.get("test_acc"),
        "test_loss": test_metrics.get("test_loss"),
        "train_seconds": round(time.perf_counter() - started, 2),
        "epochs": sum(s.epochs for s in stages),
        "n_train": len(data.splits["train"]),
        "n_val": len(data.splits["val"]),
        "n_test": len(data.splits["test"]),
        "params": net.param_counts(),
    }
    bundle = write_run_outputs(
        cfg, net, index=data.index, preprocessing=model.pre, record=model.record, metrics=metrics
    )
    return RunResult(run_dir, bundle, metrics, history)


def resume(run_dir: Path, overrides: dict[str, Any] | None = None) -> RunResult:
    """Continue an interrupted run from its last checkpoint (config read from the run)."""
    config = run_dir / "config.yaml"
    if not config.is_file():
        raise UserError("not a run directory (no config.yaml)", path=run_dir, fix="check the path")
    cfg = load_train_config(config, {**(overrides or {}), "out": str(run_dir)})
    return fit(cfg, resume_run=True)

"""Planning a study: the dataset it runs on and its expansion into :class:`RunPlan` s.

:func:`plan_runs` expands a :class:`~.spec.StudyConfig` into runs (named runs or one) × grid
product × sizes × seeds, each with a stable id (a hash of its resolved
:class:`~landscape.config.TrainConfig`) and a normal run directory
``OUT/runs/<setting>-s<seed>-<hash8>/``. Relative dataset paths in a study file are relative to
the **study file's folder** (so a study runs the same from any working directory); ``data: synth``
generates the built-in synthetic dataset into ``OUT/data/``.
"""

from __future__ import annotations

import fnmatch
import hashlib
import itertools
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from landscape.config import TrainConfig, format_validation_error, merge_dicts
from landscape.errors import ConfigError, UserError

from .spec import RunEntry, StudyConfig, StudySize, TinyOptions, flatten_keys, nest_keys

__all__ = [
    "NOT_HASHED",
    "SYNTH_SPECS",
    "RunPlan",
    "config_hash",
    "plan_runs",
    "prepare_data",
    "resolve_data",
]

#: ``data: synth`` → the built-in synthetic dataset at this (images per class, pixels) per size.
SYNTH_SPECS: dict[str, tuple[int, int]] = {"tiny": (12, 96), "full": (100, 224)}

#: TrainConfig keys that do not change what a run computes (left out of its hash and of the
#: settings a study report compares).
NOT_HASHED = frozenset({"out", "progress", "num_workers"})


@dataclass(frozen=True)
class RunPlan:
    """One training run of a study: a setting × a seed, with its resolved config.

    ``size`` is the training-set cap per class of a size sweep (``"all"`` for no cap), or None
    when the study sweeps no size.
    """

    setting: str
    group: str
    seed: int
    size: int | str | None
    config: TrainConfig
    run_id: str
    overrides: dict[str, Any]
    note: str | None = None

    @property
    def run_dir(self) -> Path:
        """The run directory (``config.out``)."""
        return Path(self.config.out)

    @property
    def cache_key(self) -> tuple[str, str] | None:
        """Runs that may write the same feature-cache entry share this key (never run at once).

        The feature cache is keyed by backbone + weights: two processes filling one entry at the
        same time would interleave their chunk files. Random-init backbones key per seed.
        """
        cfg = self.config
        frozen_stage = cfg.policy == "frozen" or cfg.fine_tune is not None
        plain = cfg.augmentation == "none" and cfg.mixup == 0 and cfg.cutmix == 0
        if cfg.weights == "none" or cfg.cache_features == "off" or not (frozen_stage and plain):
            return None
        return (cfg.backbone, str(cfg.weights))


def resolve_data(study: StudyConfig, study_file: Path | None, data: Path | None) -> Path | str:
    """The dataset: ``--data`` (relative to the cwd), else the file's ``data`` relative to the
    study file's folder; ``"synth"`` stays a marker for :func:`prepare_data`."""
    if data is not None:
        return Path(data)
    if study.data.strip().lower() == "synth":
        return "synth"
    path = Path(study.data).expanduser()
    if not path.is_absolute() and study_file is not None:
        path = (Path(study_file).resolve().parent / path).resolve()
    return path


def prepare_data(
    data: Path | str, out: Path, size: StudySize, *, log: Callable[[str], None] | None = None
) -> Path:
    """A usable dataset path: generate ``synth`` into ``OUT/data/synth-SIZE`` once, or check
    that the given path exists."""
    if data == "synth":
        from landscape.data.synth import SynthSpec, generate_dataset

        per_class, pixels = SYNTH_SPECS[size]
        target = Path(out) / "data" / f"synth-{size}"
        stamp = target / ".synth.json"
        spec = {"per_class": per_class, "size": pixels, "seed": 0}
        if not (stamp.is_file() and json.loads(stamp.read_text()) == spec):
            if log is not None:
                log(f"generating the synthetic dataset ({per_class}/class, {pixels} px) → {target}")
            generate_dataset(target, SynthSpec(per_class=per_class, size=pixels, seed=0))
            stamp.write_text(json.dumps(spec))
        return target.resolve()
    path = Path(data)
    if not path.exists():
        raise UserError("dataset not found", path=path, fix="check `data:` or pass --data DIR")
    return path.resolve()


def _label(value: Any) -> str:
    if isinstance(value, dict):
        text = "-".join(f"{k}{_label(v)}" for k, v in flatten_keys(value).items())
    elif isinstance(value, list):
        text = "x".join(_label(v) for v in value)
    elif value is None:
        text = "none"
    else:
        text = str(value)
    return re.sub(r"[^A-Za-z0-9_.=+-]+", "_", text).strip("_") or "x"


def _size_label(size: int | None) -> str:
    return "nall" if size is None else f"n{size}"


def config_hash(cfg: TrainConfig) -> str:
    """A run's stable id: 8 hex digits of the hash of its config without :data:`NOT_HASHED`."""
    data = json.loads(cfg.model_dump_json())
    for key in NOT_HASHED:
        data.pop(key, None)
    blob = json.dumps(data, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:8]


def _tiny_shrink(config: dict[str, Any], tiny: TinyOptions) -> dict[str, Any]:
    shrunk = dict(config)
    shrunk["epochs"] = min(int(shrunk.get("epochs", 10)), tiny.epochs)
    cap = shrunk.get("max_per_class")
    shrunk["max_per_class"] = tiny.max_per_class if cap is None else min(cap, tiny.max_per_class)
    # Worker processes cost more to start than a handful of images costs to decode.
    shrunk["num_workers"] = 0
    fine = shrunk.get("fine_tune")
    if isinstance(fine, dict):
        shrunk["fine_tune"] = {**fine, "head_epochs": min(fine.get("head_epochs", 2), tiny.epochs)}
    return shrunk


_UNSET = object()


def plan_runs(
    study: StudyConfig,
    out: Path,
    data: Path,
    size: StudySize = "full",
    *,
    seeds: Sequence[int] | None = None,
) -> list[RunPlan]:
    """Expand ``study`` into runs: (named runs or one) × grid product × sizes × seeds.

    ``size="tiny"`` keeps runs with ``tiny: true``, caps epochs and ``max_per_class`` and uses
    ``tiny.seeds``/``tiny.sizes`` when given. Runs whose resolved configs are identical are kept
    once (the first name wins).
    """
    tiny = size == "tiny"
    entries = study.runs or [RunEntry.model_construct(name="", overrides={})]
    keys = list(study.grid)
    combos = list(itertools.product(*(study.grid[k] for k in keys))) or [()]
    use_seeds = list(seeds) if seeds else (study.tiny.seeds if tiny and study.tiny.seeds else None)
    use_seeds = use_seeds or list(study.seeds)
    plans: list[RunPlan] = []
    seen: set[str] = set()
    for entry in entries:
        if tiny and not entry.tiny:
            continue
        unset: list[Any] = [_UNSET]
        sizes: list[Any] = list(entry.sizes or study.sizes or unset)
        if tiny and study.tiny.sizes and (entry.sizes or study.sizes):
            sizes = list(study.tiny.sizes)
        for combo in combos:
            grid_over = dict(zip(keys, combo, strict=True))
            overrides = {**entry.overrides, **grid_over}
            parts = [entry.name] if study.runs else []
            parts += [_label(v) for v in combo]
            group = "-".join(parts) or study.name
            for n in sizes:
                setting = group if n is _UNSET else f"{group}-{_size_label(n)}"
                if tiny and any(fnmatch.fnmatchcase(setting, pat) for pat in study.tiny.skip):
                    continue
                for seed in use_seeds:
                    config = merge_dicts(study.base, nest_keys(overrides))
                    if n is not _UNSET:
                        config["max_per_class"] = n
                    if tiny:
                        config = _tiny_shrink(config, study.tiny)
                    config.update({"data": str(data), "seed": seed, "progress": False})
                    try:
                        cfg = TrainConfig(**config)
                    except ValidationError as exc:
                        raise ConfigError(
                            format_validation_error(exc, f"{study.name}: run {setting}"),
                            fix="check the combination of base, grid and run keys",
                        ) from exc
                    run_id = config_hash(cfg)
                    if run_id in seen:
                        continue
                    seen.add(run_id)
                    run_dir = Path(out) / "runs" / f"{setting}-s{seed}-{run_id}"
                    cfg = cfg.model_copy(update={"out": run_dir.resolve()})
                    plans.append(
                        RunPlan(
                            setting=setting,
                            group=group,
                            seed=seed,
                            size=None if n is _UNSET else ("all" if n is None else n),
                            config=cfg,
                            run_id=run_id,
                            overrides=flatten_keys(nest_keys(overrides)),
                            note=entry.note,
                        )
                    )
    if not plans:
        raise ConfigError(
            f"{study.name}: no run left to do at size {size}",
            fix="mark some runs `tiny: true` or use --size full" if tiny else None,
        )
    return plans

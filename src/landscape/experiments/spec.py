"""Study files: the validated :class:`StudyConfig` and its parts, read by :func:`load_study`.

A study file names a dataset, the settings every run shares (``base``), what varies (a ``grid``
of values crossed with each other, a list of named ``runs``, or both: every run is crossed with
the grid), training-set ``sizes`` and ``seeds``. ``base``, grid values and run overrides are
:class:`~landscape.config.TrainConfig` keys, dotted (``optim.lr``) or nested; each is checked on
its own at load time so an error names its path in the file (``runs.2.policy``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from landscape.config import TrainConfig, format_validation_error, load_yaml, merge_dicts
from landscape.errors import ConfigError

__all__ = [
    "EvaluateOptions",
    "RunEntry",
    "StudyConfig",
    "StudySize",
    "TinyOptions",
    "flatten_keys",
    "load_study",
    "nest_keys",
]

#: ``full`` runs the study as written; ``tiny`` shrinks it to a smoke test (:class:`TinyOptions`).
StudySize = Literal["tiny", "full"]

# Keys of a run entry that describe the entry itself; every other key is a TrainConfig override.
_ENTRY_KEYS = frozenset({"name", "note", "tiny", "sizes"})
# TrainConfig keys the study owns: they are never part of base/grid/runs.
_OWNED_KEYS = frozenset({"data", "out", "seed", "progress"})
_NAME_RE = r"^[A-Za-z0-9][A-Za-z0-9_.=+-]*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EvaluateOptions(_Strict):
    """How each finished run is evaluated (``evaluate_bundle`` on the run's ``split.csv``)."""

    split: Literal["test", "val", "train"] = "test"
    latency: bool = True
    latency_runs: int = Field(20, ge=1)
    latency_batches: int = Field(2, ge=1)
    batch_size: int = Field(32, ge=1)


class TinyOptions(_Strict):
    """How ``--size tiny`` shrinks the study: a smoke test of the whole grid in minutes.

    ``skip`` lists setting-name patterns (``fnmatch``, e.g. ``untrained-vgg16*``) left out of the
    tiny study because even one epoch of them is slow.
    """

    epochs: int = Field(1, ge=1)
    max_per_class: int = Field(4, ge=1)
    seeds: list[int] | None = Field(None, min_length=1)
    sizes: list[int | None] | None = Field(None, min_length=1)
    latency_runs: int = Field(3, ge=1)
    latency_batch_size: int = Field(8, ge=1)
    skip: list[str] = Field(default_factory=list)


class RunEntry(_Strict):
    """A named variant: TrainConfig overrides (dotted keys allowed) plus a few entry keys.

    ``tiny: false`` leaves the run out of ``--size tiny`` (too slow for a smoke test);
    ``sizes`` replaces the study's training-set sizes for this run; ``note`` says what the run
    reproduces (shown in the report).
    """

    name: str = Field(pattern=_NAME_RE)
    note: str | None = None
    tiny: bool = True
    sizes: list[int | None] | None = Field(None, min_length=1)
    overrides: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _split_overrides(cls, value: Any) -> Any:
        if not isinstance(value, dict) or "overrides" in value:
            return value
        entry = {k: v for k, v in value.items() if k in _ENTRY_KEYS}
        entry["overrides"] = {k: v for k, v in value.items() if k not in _ENTRY_KEYS}
        return entry


class StudyConfig(_Strict):
    """A study file. Unknown keys are errors naming their path (``evaluate.latncy: ...``)."""

    name: str = Field(pattern=_NAME_RE)
    description: str | None = None
    data: str
    base: dict[str, Any] = Field(default_factory=dict)
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    runs: list[RunEntry] = Field(default_factory=list)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    sizes: list[int | None] | None = Field(None, min_length=1)
    evaluate: EvaluateOptions = Field(default_factory=EvaluateOptions)
    tiny: TinyOptions = Field(default_factory=TinyOptions)

    @field_validator("grid")
    @classmethod
    def _grid_lists(cls, grid: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for key, values in grid.items():
            if not values:
                raise ValueError(f"grid key {key!r} has an empty list of values")
        return grid

    @field_validator("seeds", "sizes")
    @classmethod
    def _unique(cls, values: list[Any] | None) -> list[Any] | None:
        if values is not None and len(set(values)) != len(values):
            raise ValueError("values must be unique")
        return values

    @model_validator(mode="after")
    def _has_runs(self) -> StudyConfig:
        if not self.grid and not self.runs:
            raise ValueError("the study has no runs: give a non-empty `grid` and/or `runs`")
        names = [r.name for r in self.runs]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"run names must be unique (repeated: {', '.join(dupes)})")
        return self


def load_study(path: Path) -> StudyConfig:
    """Read and validate a study file; any problem is a one-line :class:`ConfigError`."""
    raw = load_yaml(Path(path))
    try:
        study = StudyConfig(**raw)
    except ValidationError as exc:
        raise ConfigError(
            format_validation_error(exc, str(path)), fix="see configs/study-demo.yaml for the keys"
        ) from exc
    _check_train_keys(study, str(path))
    return study


def nest_keys(flat: dict[str, Any]) -> dict[str, Any]:
    """``{"optim.name": "sgd"}`` → ``{"optim": {"name": "sgd"}}`` (mappings merged deeply)."""
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        parts = key.split(".")
        node = nested
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        leaf = parts[-1]
        if isinstance(value, dict) and isinstance(node.get(leaf), dict):
            node[leaf] = merge_dicts(node[leaf], nest_keys(value))
        else:
            node[leaf] = nest_keys(value) if isinstance(value, dict) else value
    return nested


def flatten_keys(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"optim": {"name": "sgd"}}`` → ``{"optim.name": "sgd"}`` (the inverse of
    :func:`nest_keys`; an empty mapping stays a leaf)."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten_keys(value, name + "."))
        else:
            flat[name] = value
    return flat


def _train_errors(overrides: dict[str, Any]) -> list[tuple[str, str]]:
    """(key path, message) for each problem of ``overrides`` as TrainConfig keys."""
    try:
        TrainConfig(**merge_dicts({"data": "."}, nest_keys(overrides)))
    except ValidationError as exc:
        return [(".".join(str(p) for p in e["loc"]) or "(root)", e["msg"]) for e in exc.errors()]
    return []


def _raise_errors(source: str, problems: list[tuple[str, str]]) -> None:
    if problems:
        raise ConfigError(
            f"{source}: " + "; ".join(f"{where}: {msg}" for where, msg in problems),
            fix="see `landscape train --help` for the keys",
        )


def _check_train_keys(study: StudyConfig, source: str) -> None:
    """Validate base, each grid value and each run's overrides on their own, so an error names
    the key's path in the study file (``base.optim.lrr``, ``grid.optim.name[1]``,
    ``runs.2.policy``)."""
    sections: list[tuple[str, dict[str, Any]]] = [("base", study.base)]
    sections += [(f"runs.{i}", r.overrides) for i, r in enumerate(study.runs)]
    sections += [("grid", {k: v[0]}) for k, v in study.grid.items()]
    for where, overrides in sections:
        owned = sorted(
            k for k in flatten_keys(nest_keys(overrides)) if k.split(".")[0] in _OWNED_KEYS
        )
        if owned:
            raise ConfigError(
                f"{source}: {where}.{owned[0]}: set by the study, not per run",
                fix="use the study's `data` and `seeds`, and --out",
            )
        _raise_errors(source, [(f"{where}.{loc}", msg) for loc, msg in _train_errors(overrides)])
    for key, values in study.grid.items():
        for i, value in enumerate(values):
            problems = _train_errors({key: value})
            _raise_errors(source, [(f"grid.{key}[{i}]", msg) for _, msg in problems])
    grid_keys = set(flatten_keys(nest_keys({k: v[0] for k, v in study.grid.items()})))
    for i, run in enumerate(study.runs):
        for key in flatten_keys(nest_keys(run.overrides)):
            clash = [g for g in grid_keys if g == key or g.startswith(key + ".")]
            clash += [g for g in grid_keys if key.startswith(g + ".")]
            if clash:
                raise ConfigError(
                    f"{source}: runs.{i}.{key}: also varied by grid.{clash[0]}",
                    fix="set a key either in a run or in the grid",
                )

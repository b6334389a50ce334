"""Command-line flags derived from :class:`~landscape.config.TrainConfig`.

A flag is declared by the config path it sets and its names; its type, choices, constraints
and help come from the config field, so ``train``, ``lr-find`` and ``tune`` cannot drift from
the config (or from each other). An invalid value is a usage error (exit 2) naming the flag,
checked by the same pydantic rules a YAML config goes through.
"""

from __future__ import annotations

import functools
import inspect
import types
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

import typer
from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

from landscape.config import TrainConfig, normalize_policy

__all__ = ["TRAIN_FLAGS", "ConfigFlag", "config_flags", "set_path", "with_config_flags"]

F = TypeVar("F", bound=Callable[..., Any])
# Annotated[...] built at run time from field types, which static checkers cannot follow.
_ANNOTATED: Any = Annotated
_SIMPLE = (bool, int, float, str)


@dataclass(frozen=True)
class ConfigFlag:
    """A CLI flag that sets one :class:`TrainConfig` key (``path`` is dotted: ``optim.lr``)."""

    path: str
    decls: tuple[str, ...]
    panel: str = "Training"
    #: extra check beyond the field's type (for keys checked by a pydantic field validator)
    check: Callable[[Any], Any] | None = None

    @property
    def param_name(self) -> str:
        """The Python parameter name typer passes the value as."""
        return "cfg_" + self.path.replace(".", "_")


def _field(path: str, model: type[BaseModel] = TrainConfig) -> tuple[FieldInfo, bool]:
    """The field at ``path`` and whether its value has a default that applies when unset
    (not so inside an optional section such as ``fine_tune``, which is absent by default)."""
    owner: Any = model
    parts = path.split(".")
    applies = True
    for part in parts[:-1]:
        parent = owner.model_fields[part]
        applies = applies and parent.get_default(call_default_factory=False) is not None
        owner = _strip_none(parent.annotation)
    info: FieldInfo = owner.model_fields[parts[-1]]
    return info, applies and not info.is_required()


def _strip_none(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else Union[tuple(args)]  # noqa: UP007
    return annotation


def _cli_type(annotation: Any) -> Any:
    """What typer parses: simple types and Literal choices as they are, other unions as text."""
    bare = _strip_none(annotation)
    if bare in _SIMPLE or get_origin(bare) is Literal:
        return bare
    return bare if bare is Path else str


def _help(info: FieldInfo, has_default: bool) -> str:
    text = info.description or ""
    default = info.get_default(call_default_factory=False) if has_default else None
    if default is not None and not callable(default) and not isinstance(default, bool):
        text += f" [default: {default}]"
    return text


def _validator(flag: ConfigFlag, info: FieldInfo) -> Callable[[Any], Any]:
    name = flag.decls[0]

    @functools.cache
    def adapter() -> TypeAdapter[Any]:
        # Built on first use: --help never pays for the pydantic schemas.
        annotation: Any = info.annotation
        if info.metadata:
            annotation = _ANNOTATED[annotation, *info.metadata]
        return TypeAdapter(annotation)

    def validate(value: Any) -> Any:
        if value is None:
            return None
        try:
            checked = adapter().validate_python(value)
            return flag.check(checked) if flag.check else checked
        except ValidationError as exc:
            message = "; ".join(err["msg"] for err in exc.errors())
            raise typer.BadParameter(f"{value!r}: {message}", param_hint=name) from exc
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint=name) from exc

    return validate


def _parameter(flag: ConfigFlag) -> inspect.Parameter:
    info, has_default = _field(flag.path)
    option = typer.Option(
        *flag.decls,
        help=_help(info, has_default),
        callback=_validator(flag, info),
        rich_help_panel=flag.panel,
        show_default=False,
    )
    annotation = _ANNOTATED[_cli_type(info.annotation) | None, option]
    return inspect.Parameter(
        flag.param_name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation
    )


def set_path(target: dict[str, Any], path: str, value: Any) -> None:
    """``set_path(d, "optim.lr", 0.1)`` → ``d["optim"]["lr"] = 0.1`` (creating levels)."""
    *parents, last = path.split(".")
    for part in parents:
        target = target.setdefault(part, {})
    target[last] = value


def with_config_flags(flags: Iterable[ConfigFlag]) -> Callable[[F], F]:
    """Add ``flags`` to a typer command; it receives the values set as ``overrides``.

    The decorated function declares ``overrides: dict[str, Any]`` (nested like the config,
    only the flags the user gave) next to its own options.
    """
    flags = tuple(flags)

    def decorate(func: F) -> F:
        signature = inspect.signature(func, eval_str=True)
        own = [p for p in signature.parameters.values() if p.name != "overrides"]
        params = own + [_parameter(flag) for flag in flags]

        @functools.wraps(func)
        def command(*args: Any, **kwargs: Any) -> Any:
            overrides: dict[str, Any] = {}
            for flag in flags:
                value = kwargs.pop(flag.param_name, None)
                if value is not None:
                    set_path(overrides, flag.path, value)
            return func(*args, overrides=overrides, **kwargs)

        command.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        return command  # type: ignore[return-value]

    return decorate


def _policy(value: Any) -> Any:
    return normalize_policy(str(value))


def _backbone(value: Any) -> Any:
    from landscape.errors import UserError
    from landscape.models import get_backbone_info

    try:
        return get_backbone_info(str(value)).name
    except UserError as exc:  # a registry name is a choice: a usage error, with suggestions
        raise ValueError(str(exc).rstrip(".")) from exc


_DATA, _MODEL, _OPTIM, _RUN = "Data", "Model", "Optimisation", "Run"

#: every TrainConfig key the CLI can set, by a short name; commands pick theirs with
#: :func:`config_flags`
TRAIN_FLAGS: dict[str, ConfigFlag] = {
    flag.path: flag
    for flag in (
        ConfigFlag("data", ("--data", "-d"), _DATA),
        ConfigFlag("val_fraction", ("--val-fraction",), _DATA),
        ConfigFlag("test_fraction", ("--test-fraction",), _DATA),
        ConfigFlag("max_per_class", ("--max-per-class",), _DATA),
        ConfigFlag("crop", ("--crop",), _DATA),
        ConfigFlag("normalize", ("--normalize",), _DATA),
        ConfigFlag("augmentation", ("--augmentation", "--aug"), _DATA),
        ConfigFlag("mixup", ("--mixup",), _DATA),
        ConfigFlag("cutmix", ("--cutmix",), _DATA),
        ConfigFlag("backbone", ("--backbone", "-b"), _MODEL, check=_backbone),
        ConfigFlag("weights", ("--weights", "-w"), _MODEL),
        ConfigFlag("weights_sha256", ("--sha256",), _MODEL),
        ConfigFlag("init", ("--init",), _MODEL),
        ConfigFlag("head.kind", ("--head",), _MODEL),
        ConfigFlag("head.dropout", ("--dropout",), _MODEL),
        ConfigFlag("head.C", ("--C",), _MODEL),
        ConfigFlag("head.cv_folds", ("--cv-folds",), _MODEL),
        ConfigFlag("layer", ("--layer",), _MODEL),
        ConfigFlag("policy", ("--policy", "-p"), _MODEL, check=_policy),
        ConfigFlag("bn", ("--bn",), _MODEL),
        ConfigFlag("fine_tune.head_epochs", ("--fine-tune",), _MODEL),
        ConfigFlag("epochs", ("--epochs", "-e"), _OPTIM),
        ConfigFlag("batch_size", ("--batch-size",), _OPTIM),
        ConfigFlag("optim.name", ("--optimizer",), _OPTIM),
        ConfigFlag("optim.lr", ("--lr",), _OPTIM),
        ConfigFlag("optim.weight_decay", ("--weight-decay",), _OPTIM),
        ConfigFlag("optim.scheduler", ("--scheduler",), _OPTIM),
        ConfigFlag("optim.label_smoothing", ("--label-smoothing",), _OPTIM),
        ConfigFlag("optim.class_weights", ("--class-weights",), _OPTIM),
        ConfigFlag("early_stopping", ("--early-stopping",), _OPTIM),
        ConfigFlag("seed", ("--seed",), _RUN),
        ConfigFlag("out", ("--out", "-o"), _RUN),
        ConfigFlag("cache_features", ("--cache-features",), _RUN),
        ConfigFlag("num_workers", ("--workers",), _RUN),
        ConfigFlag("accelerator", ("--accelerator",), _RUN),
        ConfigFlag("devices", ("--devices",), _RUN),
        ConfigFlag("strategy", ("--strategy",), _RUN),
        ConfigFlag("precision", ("--precision",), _RUN),
        ConfigFlag("tensorboard", ("--tensorboard",), _RUN),
    )
}


def config_flags(*paths: str) -> tuple[ConfigFlag, ...]:
    """The flags of these config paths (all of :data:`TRAIN_FLAGS` when none are named)."""
    return tuple(TRAIN_FLAGS[p] for p in paths) if paths else tuple(TRAIN_FLAGS.values())

"""Experiments: studies (a grid of training runs compared in one report) and Optuna tuning.

Both train models and then evaluate them, so this package sits above :mod:`landscape.train` and
:mod:`landscape.evaluation`. A study flows ``load_study`` (:mod:`.spec`) → ``plan_runs``
(:mod:`.plan`) → ``run_study`` (:mod:`.run`) → ``aggregate`` (:mod:`.aggregate`) →
``write_study_report`` (:mod:`.study_report`); ``tune`` (:mod:`.tune`) searches
hyper-parameters around one training config. Heavy libraries (torch, Lightning, Optuna,
matplotlib, Jinja2) are imported by the functions that need them.
"""

from .aggregate import SettingRow, StudyResult, aggregate, pareto_front
from .plan import RunPlan, plan_runs, prepare_data, resolve_data
from .run import effective_jobs, execute_run, run_study
from .spec import EvaluateOptions, RunEntry, StudyConfig, StudySize, TinyOptions, load_study
from .study_report import failure_groups, format_mean_std, markdown_table, write_study_report
from .tune import TuneResult, apply_params, default_params, pruning_callback, tune

__all__ = [
    "EvaluateOptions",
    "RunEntry",
    "RunPlan",
    "SettingRow",
    "StudyConfig",
    "StudyResult",
    "StudySize",
    "TinyOptions",
    "TuneResult",
    "aggregate",
    "apply_params",
    "default_params",
    "effective_jobs",
    "execute_run",
    "failure_groups",
    "format_mean_std",
    "load_study",
    "markdown_table",
    "pareto_front",
    "plan_runs",
    "prepare_data",
    "pruning_callback",
    "resolve_data",
    "run_study",
    "tune",
    "write_study_report",
]

"""The progress-reporting shape studies and tuning accept, and the silent default."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

from landscape.evaluation.evaluate import ProgressFactory

__all__ = ["ProgressFactory", "no_progress"]


def no_progress(description: str, total: int) -> AbstractContextManager[Callable[[int], None]]:
    """A :data:`ProgressFactory` that shows nothing (used when the caller passes none)."""

    def advance(n: int = 1) -> None:
        return None

    return nullcontext(advance)

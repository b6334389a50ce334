"""Process-wide settings from the environment (``LANDSCAPE_…``), one object for every command.

The workbench and the coming service (``index``, ``serve``) read the same :class:`Settings`:
where data, caches and the database live, the weights mirror, and whether to show tracebacks.
Values come from environment variables with the ``LANDSCAPE_`` prefix (``LANDSCAPE_HOME``,
``LANDSCAPE_CACHE``, ``LANDSCAPE_DB``, ``LANDSCAPE_MODEL``, ``LANDSCAPE_WEIGHTS_MIRROR``,
``LANDSCAPE_DEBUG``) or from keyword arguments; unset paths fall back to the platform's user
directories (platformdirs).

Importing this module imports neither torch nor any other heavy library.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "get_settings"]

_APP = "landscape"


class Settings(BaseSettings):
    """Where landscape keeps its files and which services it talks to."""

    model_config = SettingsConfigDict(env_prefix="LANDSCAPE_", extra="ignore", frozen=True)

    home: Path | None = Field(
        None,
        description="Data directory (database, thumbnails, keyframes); default: user data dir.",
    )
    cache: Path | None = Field(
        None, description="Cache directory (weights, features); default: user cache dir."
    )
    db: str | None = Field(
        None,
        validation_alias=AliasChoices("LANDSCAPE_DB", "db"),
        description="Database URL; default: sqlite:///<home>/landscape.db.",
    )
    model: Path | None = Field(
        None, description="Model bundle for `index` when the database has no active model."
    )
    weights_mirror: str | None = Field(
        None, description="Base URL serving hub weights files by their cache names (offline use)."
    )
    debug: bool = Field(False, description="Show full tracebacks instead of one-line errors.")

    @field_validator("weights_mirror", "db", mode="after")
    @classmethod
    def _blank_is_unset(cls, value: str | None) -> str | None:
        return value or None

    @property
    def data_dir(self) -> Path:
        """The data directory: ``home`` or the platform's user data dir for ``landscape``."""
        if self.home is not None:
            return self.home.expanduser()
        from platformdirs import user_data_path

        return user_data_path(_APP)

    @property
    def cache_dir(self) -> Path:
        """The cache root: ``cache`` or ``~/.cache/landscape`` (the platform's user cache dir)."""
        if self.cache is not None:
            return self.cache.expanduser()
        from platformdirs import user_cache_path

        return user_cache_path(_APP)

    @property
    def database_url(self) -> str:
        """SQLAlchemy URL of the index database (SQLite in the data dir unless ``db`` is set)."""
        return self.db or f"sqlite:///{self.data_dir / 'landscape.db'}"


def get_settings() -> Settings:
    """The settings as the environment says now (cheap; not cached, so tests and long-lived
    processes see a changed environment)."""
    return Settings()

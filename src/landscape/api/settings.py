"""Settings of ``landscape serve``: the process-wide :class:`~landscape.settings.Settings`
(database, data dir, model) plus what only the service needs, from ``LANDSCAPE_…`` variables
or keyword arguments (the CLI's options)."""

from __future__ import annotations

import secrets
from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from landscape.settings import Settings

__all__ = ["ServiceSettings"]


class ServiceSettings(Settings):
    """What ``landscape serve`` runs with."""

    model_config = SettingsConfigDict(env_prefix="LANDSCAPE_", extra="ignore", frozen=True)

    host: str = Field("127.0.0.1", description="Interface to listen on.")
    port: int = Field(8000, ge=1, le=65535, description="TCP port.")
    roots: tuple[Path, ...] = Field(
        (), description="Folders whose files may be served (default: the index's roots)."
    )
    upload_dir: Path | None = Field(
        None, description="Where uploads are stored (default: <data dir>/uploads)."
    )
    max_upload_mb: float = Field(50.0, gt=0, description="Largest upload accepted, in MB.")
    docs: bool = Field(True, description="Serve the OpenAPI docs at /docs.")
    secret: str | None = Field(
        None, description="Key signing session cookies (default: one kept in the data dir)."
    )
    cookie_secure: bool = Field(False, description="Send the session cookie over HTTPS only.")
    session_hours: float = Field(12.0, gt=0, description="How long a GUI login lasts.")
    login_attempts: int = Field(5, ge=1, description="Failed logins per name and address ...")
    login_window_s: float = Field(900.0, gt=0, description="... within this many seconds.")

    @property
    def upload_root(self) -> Path:
        """The folder uploads are written to (indexed as a root of its own)."""
        return (self.upload_dir or self.data_dir / "uploads").expanduser()

    @property
    def thumbnail_dir(self) -> Path:
        """The thumbnail cache."""
        return self.data_dir / "thumbnails"

    def signing_key(self) -> bytes:
        """``secret``, else a random key created once in the data dir (owner-only file)."""
        if self.secret:
            return self.secret.encode()
        path = self.data_dir / "session.key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(secrets.token_hex(32))
            tmp.chmod(0o600)
            tmp.replace(path)
        return path.read_text().strip().encode()

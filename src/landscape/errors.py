"""Errors a user can fix.

Every error raised for bad input is a :class:`UserError`: the CLI prints its one-line message and
exits with code 1 (no traceback unless ``--debug``). Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from pathlib import Path


class UserError(Exception):
    """A mistake in the user's input; the message is one line naming the problem and the fix."""

    def __init__(self, message: str, *, path: Path | str | None = None, fix: str | None = None):
        parts = [f"{path}: {message}" if path is not None else message]
        if fix:
            parts.append(fix)
        super().__init__(" — ".join(p.rstrip(".") for p in parts) + ".")
        self.path = path
        self.fix = fix


class DatasetError(UserError):
    """A dataset folder or manifest cannot be used as given."""


class ImageDecodeError(UserError):
    """An image file is corrupt, truncated, too large or not an image."""


class VideoDecodeError(UserError):
    """A video file cannot be opened, or holds no video stream or no frames."""


class ConfigError(UserError):
    """A configuration file or option is invalid."""


class WeightsError(UserError):
    """Weights are missing, unreachable, of the wrong architecture or fail their checksum."""


class BundleError(UserError):
    """A model bundle is missing, tampered with, truncated or of an unknown format."""


class DownloadError(UserError):
    """A download failed, was unsafe or did not match its checksum."""

"""``python -m landscape``."""

from landscape.cli import _entry

_entry()

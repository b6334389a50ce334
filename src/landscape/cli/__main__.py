"""``python -m landscape.cli``."""

from landscape.cli import _entry

_entry()

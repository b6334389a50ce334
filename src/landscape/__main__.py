"""``python -m landscape``."""

from landscape.cli import _entry

# Guarded: DataLoader and sandbox workers started by spawn/forkserver import the main module
# again, and an unguarded call would run the whole command once more inside each of them.
if __name__ == "__main__":
    _entry()

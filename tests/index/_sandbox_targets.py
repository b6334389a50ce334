"""Module-level functions the sandbox tests run in workers (spawned workers import them by name).

Each one behaves like a decoder meeting a particular hostile file: returns, raises, hangs,
segfaults, exits, or allocates without bound.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from landscape.errors import ImageDecodeError

# Set by remember_init in each worker; read back by init_value.
_INIT: dict[str, Any] = {}


def square(x: int) -> int:
    return x * x


def pid_of(_: object) -> int:
    return os.getpid()


def raise_value_error(x: object) -> None:
    raise ValueError(f"bad value {x!r}\nsecond line")


def raise_user_error(name: str) -> None:
    raise ImageDecodeError("not an image", path=name)


def sleep_for(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def segfault(_: object) -> None:
    os.kill(os.getpid(), signal.SIGSEGV)
    time.sleep(10)  # never reached: the signal's default action kills the process


def sigkill_self(_: object) -> None:
    os.kill(os.getpid(), signal.SIGKILL)  # what the kernel's OOM killer sends
    time.sleep(10)


def exit_3(_: object) -> None:
    os._exit(3)


def allocate_bytes(gigabytes: float) -> int:
    block = bytearray(int(gigabytes * (1 << 30)))
    return len(block)


def allocate_numpy(gigabytes: float) -> int:
    import numpy as np

    # ones, not zeros: zeros could be lazily mapped and never touch the cap on some allocators.
    array = np.ones(int(gigabytes * (1 << 30)), dtype=np.uint8)
    return int(array.size)


def allocate_pillow(gigabytes: float) -> int:
    from PIL import Image

    side = int((gigabytes * (1 << 30) / 3) ** 0.5)
    Image.MAX_IMAGE_PIXELS = None  # the bomb check is not what is tested here
    image = Image.new("RGB", (side, side))
    return image.width * image.height * 3


def allocate_torch(gigabytes: float) -> int:
    import torch

    tensor = torch.ones(int(gigabytes * (1 << 30)), dtype=torch.uint8)
    return int(tensor.numel())


def modules_loaded(names: list[str]) -> list[str]:
    import sys

    return [name for name in names if name in sys.modules]


def data_limit(_: object) -> tuple[int, int]:
    import resource

    return resource.getrlimit(resource.RLIMIT_DATA)


def record_pid_then_sleep(task: tuple[str, float]) -> None:
    """Write this worker's pid into folder ``task[0]``, then hang for ``task[1]`` seconds."""
    folder, seconds = task
    Path(folder, str(os.getpid())).write_text("")
    time.sleep(seconds)


def remember_init(path: str, value: str) -> None:
    """An initializer: remember ``value`` and append this worker's pid to ``path``."""
    _INIT["value"] = value
    with open(path, "a") as fh:
        fh.write(f"{os.getpid()}\n")


def init_value(_: object) -> tuple[int, str | None]:
    return os.getpid(), _INIT.get("value")


def failing_init() -> None:
    raise RuntimeError("model bundle exploded")


def unpicklable_result(_: object) -> Any:
    return lambda: None


def behave(task: tuple[str, Any]) -> Any:
    """Dispatch ``(name, argument)`` to the target of that name: one function for mixed batches."""
    name, argument = task
    return _BEHAVIOURS[name](argument)


_BEHAVIOURS: dict[str, Callable[[Any], Any]] = {
    "square": square,
    "raise": raise_value_error,
    "sleep": sleep_for,
    "segfault": segfault,
    "exit": exit_3,
    "allocate": allocate_bytes,
    "record": record_pid_then_sleep,
}

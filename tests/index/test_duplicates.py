"""``landscape search --duplicates``: exact copies and near-duplicates found in a real index."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from landscape.data.synth import render_landscape
from landscape.data.synth_video import Scene, landscape_clip
from landscape.index.db import open_index, session_factory
from landscape.index.duplicates import find_duplicates
from landscape.index.pipeline import IndexOptions, run_index
from landscape.inference.predictor import Predictor
from tests.conftest import CliResult

Run = Callable[..., CliResult]


def _store(root: Path) -> dict[str, Path]:
    """Photos and videos with copies of every kind an archive collects."""
    (root / "2024").mkdir(parents=True)
    (root / "backup").mkdir()
    made: dict[str, Path] = {}
    for i, label in enumerate(("coast", "desert", "forest", "glacier")):
        path = root / "2024" / f"{label}.jpg"
        render_landscape(label, np.random.default_rng(i), 320).save(path, quality=92)
        made[label] = path
    made["coast-copy"] = root / "backup" / "coast.jpg"
    shutil.copy(made["coast"], made["coast-copy"])  # the same bytes
    made["coast-small"] = root / "backup" / "coast-web.jpg"
    with_pil = render_landscape("coast", np.random.default_rng(0), 320).resize((160, 160))
    with_pil.save(made["coast-small"], quality=60)  # the same picture, other bytes
    made["desert-png"] = root / "backup" / "desert.png"
    render_landscape("desert", np.random.default_rng(1), 320).save(made["desert-png"])
    scenes = [Scene("forest", 3), Scene("mountain", 3)]
    made["pass"] = landscape_clip(root / "2024" / "pass.mp4", scenes, seed=5).path
    # The same footage transcoded to MPEG-4 in AVI: other bytes, the same pictures.
    made["pass-mpeg4"] = landscape_clip(
        root / "backup" / "pass.avi", scenes, seed=5, codec="mpeg4"
    ).path
    return made


def _groups(url: str, **options: object) -> list[tuple[str, set[str]]]:
    with session_factory(open_index(url, create=False))() as session:
        return [
            (g.kind, {Path(f.path).name for f in g.files})
            for g in find_duplicates(session, **options)  # type: ignore[arg-type]
        ]


@pytest.mark.parametrize("classify", [True, False], ids=["with-model", "metadata-only"])
def test_exact_and_near_duplicates_are_grouped(
    db_url: str, tmp_path: Path, tiny_run: Path, classify: bool
) -> None:
    made = _store(tmp_path / "store")
    predictor = Predictor.from_bundle(tiny_run / "bundle") if classify else None
    options = IndexOptions(workers=1, memory_mb=None, keyframe_dir=tmp_path / "kf")
    run_index(open_index(db_url), [tmp_path / "store"], predictor=predictor, options=options)
    groups = _groups(db_url)
    assert ("exact", {"coast.jpg"}) in groups  # 2024/coast.jpg and backup/coast.jpg
    near = [names for kind, names in groups if kind == "near"]
    assert {"coast.jpg", "coast-web.jpg"} in near  # both copies of the photo and the small one
    assert {"desert.jpg", "desert.png"} in near
    if classify:  # a video gets its pHash from a sampled frame: only when frames are sampled
        assert {"pass.mp4", "pass.avi"} in near
    everything_grouped = set().union(*(names for _, names in groups))
    assert "forest.jpg" not in everything_grouped and "glacier.jpg" not in everything_grouped
    assert _groups(db_url, exact_only=True) == [("exact", {"coast.jpg"})]
    with session_factory(open_index(db_url, create=False))() as session, pytest.raises(ValueError):
        find_duplicates(session, max_bits=64)
    # A deleted copy is no longer a duplicate once the index sees it gone.
    made["coast-copy"].unlink()
    run_index(open_index(db_url), [tmp_path / "store"], predictor=predictor, options=options)
    assert all(kind != "exact" for kind, _ in _groups(db_url))


def test_duplicates_as_a_user(run_cli: Run, tmp_path: Path) -> None:
    _store(tmp_path / "store")
    url = f"sqlite:///{tmp_path / 'dupes.db'}"
    assert run_cli("index", tmp_path / "store", "--db", url, "--no-progress").code == 0
    human = run_cli("search", "--db", url, "--duplicates")
    assert human.code == 0, human.err
    assert "exact · 2 files" in human.out and "near · " in human.out
    assert "backup/coast.jpg" in human.out and "reclaimable" in human.out
    rows = json.loads(run_cli("search", "--db", url, "--duplicates", "--exact", "--json").out)
    assert [r["kind"] for r in rows] == ["exact"]
    assert rows[0]["reclaimable"] == Path(rows[0]["files"][0]["path"]).stat().st_size
    for wrong in (["--exact"], ["--duplicates", "--label", "coast"], ["--duplicates", "--csv"]):
        refused = run_cli("search", "--db", url, *wrong)
        assert refused.code == 1 and len(refused.err.strip().splitlines()) == 1

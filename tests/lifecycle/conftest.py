"""A reviewed index for the lifecycle: synthetic scenes indexed with a real model, every file
reviewed by an analyst with its true label (a correction where the model was wrong, else a
confirmation)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from landscape.data.synth import SynthSpec, generate_dataset
from landscape.index.accounts import Identity, add_user
from landscape.index.db import open_index, session_factory
from landscape.index.pipeline import IndexOptions, run_index
from landscape.index.reviews import add_correction
from landscape.index.schema import File
from landscape.inference.predictor import Predictor

__all__ = ["Reviewed", "review_all", "reviewed"]


@dataclass
class Reviewed:
    """A template index of synthetic scenes, every file reviewed with its true label."""

    db: Path
    archive: Path
    bundle: Path

    def copy(self, folder: Path) -> str:
        target = folder / "index.db"
        shutil.copyfile(self.db, target)
        return f"sqlite:///{target}"


def review_all(url: str, *, keep: Callable[[int], bool] = lambda i: True) -> None:
    engine = open_index(url)
    with session_factory(engine)() as s:
        user = add_user(s, "ana", "analyst", None)
        s.flush()
        who = Identity(user_id=user.id, name="ana", role="analyst", scope="write")
        rows = s.execute(select(File.id, File.relative_path).order_by(File.id)).all()
        for i, (file_id, relative) in enumerate(rows):
            if keep(i):
                add_correction(s, who, file_id, relative.split("/")[0])
        s.commit()
    engine.dispose()


@pytest.fixture(scope="session")
def reviewed(tmp_path_factory: pytest.TempPathFactory, scene_run: Path) -> Reviewed:
    work = tmp_path_factory.mktemp("lifecycle")
    archive = work / "archive"
    generate_dataset(archive, SynthSpec(per_class=8, size=96, seed=11))
    db = work / "template.db"
    engine = open_index(f"sqlite:///{db}")
    run_index(
        engine,
        [archive],
        predictor=Predictor.from_bundle(scene_run / "bundle"),
        options=IndexOptions(workers=1, memory_mb=None),
    )
    engine.dispose()
    review_all(f"sqlite:///{db}")
    return Reviewed(db, archive, scene_run / "bundle")

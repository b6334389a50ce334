"""Synthetic clips: real video bytes that decode to what the truth says."""

from __future__ import annotations

import itertools
from pathlib import Path

import av
import numpy as np
import pytest

from landscape.data.synth_video import Scene, landscape_clip, write_clip


def test_a_landscape_clip_decodes_to_its_scenes_with_the_truth(tmp_path: Path) -> None:
    truth = landscape_clip(
        tmp_path / "pan.mp4",
        [Scene("coast", 2), Scene("desert", 1.5)],
        fps=10,
        size=(160, 96),
        metadata={"location": "+48.8577+002.2950/"},
    )
    assert truth.segments == ((0.0, 2.0, "coast"), (2.0, 3.5, "desert")) and truth.duration == 3.5
    with av.open(str(truth.path)) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height, stream.codec_context.name) == (160, 96, "h264")
        assert container.metadata["location"].startswith("+48.8577+002.2950")
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 35
    # The camera pans: neighbours differ a little; the cut between scenes differs a lot.
    step = [float(np.abs(a.astype(int) - b).mean()) for a, b in itertools.pairwise(frames)]
    assert max(step[:19]) < step[19] and step[19] > 10


@pytest.mark.parametrize(
    ("suffix", "codec"),
    [(".mkv", "libx264"), (".webm", "libvpx-vp9"), (".avi", "mpeg4"), (".ts", "libx264"),
     (".mov", "mpeg4")],
)  # fmt: skip
def test_containers_and_codecs(tmp_path: Path, suffix: str, codec: str) -> None:
    frames = [np.full((48, 64, 3), 10 * i, np.uint8) for i in range(6)]
    path = write_clip(tmp_path / f"clip{suffix}", frames, fps=5, codec=codec)
    with av.open(str(path)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 6


def test_explicit_timestamps_make_a_variable_frame_rate(tmp_path: Path) -> None:
    times = [0.0, 0.1, 0.2, 0.5, 0.6, 1.0, 1.1, 1.5]
    frames = [np.full((32, 32, 3), 20 * i, np.uint8) for i in range(len(times))]
    path = write_clip(tmp_path / "vfr.mp4", frames, timestamps=times)
    with av.open(str(path)) as container:
        decoded = [round(float(f.time), 3) for f in container.decode(video=0)]
    assert decoded == times


def test_codec_options_reach_the_encoder(tmp_path: Path) -> None:
    """A keyframe every 10 frames (`g`), as phones write one every second."""
    frames = [np.full((32, 32, 3), 128, np.uint8)] * 40
    path = write_clip(tmp_path / "gop.mp4", frames, fps=10, codec_options={"g": "10"})
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        keys = [p.pts for p in container.demux(stream) if p.is_keyframe and p.pts is not None]
    assert len(keys) == 4


def test_picture_clip_pans_each_shot_and_joins_shots_of_one_label(tmp_path: Path) -> None:
    from PIL import Image

    from landscape.data.synth_video import Shot, picture_clip

    red, blue = Image.new("RGB", (150, 150), (200, 0, 0)), Image.new("RGB", (150, 150), (0, 0, 200))
    shots = [Shot("sea", blue, 1.0), Shot("sea", blue, 1.0), Shot("desert", red, 1.5)]
    truth = picture_clip(tmp_path / "p.mp4", shots, fps=10, size=(96, 64))
    assert truth.segments == ((0.0, 2.0, "sea"), (2.0, 3.5, "desert"))
    with av.open(str(truth.path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 35 and frames[0][..., 2].mean() > 150 and frames[-1][..., 0].mean() > 150

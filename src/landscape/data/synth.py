"""Procedural landscape photos: the built-in default dataset and the tests' fixture.

Five classes of the reference study (coast, desert, forest, glacier, mountain) are drawn with numpy
and Pillow only, so that the whole project can run, train and be tested without downloading any
image. The scenes are deliberately varied and sometimes misleading (mountains behind a coast, snowy
peaks above a glacier, pale dunes that look like a beach, a forest at the foot of a range) so that
a classifier has to learn something, while staying learnable.

Every image is a function of ``(seed, class index, image index)`` only: the same :class:`SynthSpec`
writes byte-identical files, a subset of the classes writes the same files as the full set, and the
work could be split between processes without changing the result. Each JPEG carries EXIF written by
Pillow (dates, a fictitious camera, a description naming the class and GPS coordinates plausible for
the class) so that the metadata paths of the project have something real to read.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageChops, ImageDraw, ImageFilter
from PIL.TiffImagePlugin import IFDRational

from landscape.errors import UserError

__all__ = ["CLASSES", "SynthResult", "SynthSpec", "generate_dataset", "render_landscape"]

CLASSES: tuple[str, ...] = ("coast", "desert", "forest", "glacier", "mountain")

_Arr = npt.NDArray[Any]
_F32 = np.float32

# Scenes are drawn at a fraction of the output size and upscaled: it is what makes the generator
# fast enough (≥ 200 images/s on two cores) and the resampling gives the slight softness of a
# real lens, which hides the aliasing of the polygons drawn by ImageDraw.
_RENDER_SCALE = 0.5
_MIN_RENDER = 32

_CAMERA_MAKE = "LandscapeSynth"
_CAMERA_MODEL = "LS-1"

# (lat_min, lat_max, lon_min, lon_max) boxes where a photo of the class is plausible.
_GPS_REGIONS: dict[str, tuple[tuple[float, float, float, float], ...]] = {
    "coast": (
        (37.0, 41.8, -9.5, -8.8),  # Portuguese Atlantic coast
        (35.6, 36.5, -121.9, -121.3),  # Big Sur
        (-38.9, -38.3, 142.5, 144.0),  # Great Ocean Road
        (48.5, 48.8, -4.6, -2.5),  # north Brittany
        (40.6, 40.7, 14.4, 14.8),  # Amalfi coast
    ),
    "desert": (
        (20.0, 30.0, -5.0, 25.0),  # Sahara
        (-26.0, -21.0, -70.3, -68.5),  # Atacama
        (18.5, 22.5, 45.0, 55.0),  # Rub' al Khali
        (-27.0, -22.0, 14.5, 16.0),  # Namib
    ),
    "forest": (
        (47.6, 48.9, 7.8, 8.9),  # Black Forest
        (47.5, 48.2, -124.3, -123.0),  # Olympic peninsula
        (52.6, 52.9, 23.6, 24.0),  # Białowieża
        (61.0, 66.0, 25.0, 30.0),  # Finnish taiga
        (43.0, 45.0, -72.5, -70.5),  # New England
    ),
    "glacier": (
        (46.4, 46.6, 7.9, 8.1),  # Aletsch
        (45.8, 46.0, 6.8, 7.1),  # Mont Blanc massif
        (64.0, 72.0, -51.0, -45.0),  # west Greenland
        (-50.5, -49.5, -73.5, -72.8),  # southern Patagonian ice field
        (58.5, 61.0, -148.0, -134.0),  # south-east Alaska
        (64.0, 64.7, -17.5, -15.5),  # Vatnajökull
    ),
    "mountain": (
        (27.5, 29.0, 84.0, 88.0),  # Himalaya
        (39.0, 51.5, -117.5, -105.5),  # Rockies
        (45.8, 47.2, 6.8, 12.0),  # Alps
        (-33.0, -32.5, -70.2, -69.8),  # Aconcagua
        (46.3, 46.7, 11.5, 12.3),  # Dolomites
    ),
}


@dataclass(frozen=True)
class SynthSpec:
    """What to generate: ``per_class`` images of ``size``×``size`` pixels for each of ``classes``.

    Invalid values raise :class:`~landscape.errors.UserError` when the spec is built.
    """

    per_class: int
    size: int = 224
    seed: int = 0
    classes: tuple[str, ...] = CLASSES
    quality: tuple[int, int] = (70, 95)  # JPEG quality range, both ends included

    def __post_init__(self) -> None:
        # The CLI hands over lists; a tuple keeps the spec hashable and frozen for real. A bare
        # string is one class, not a sequence of letters.
        given = (self.classes,) if isinstance(self.classes, str) else self.classes
        classes = tuple(dict.fromkeys(given))
        object.__setattr__(self, "classes", classes)
        object.__setattr__(self, "quality", tuple(self.quality))
        if not classes:
            raise UserError("no class to generate", fix=f"choose among {', '.join(CLASSES)}")
        for cls in classes:
            _check_class(cls)
        if self.per_class < 1:
            raise UserError(
                f"per_class must be at least 1, got {self.per_class}", fix="ask for 1 or more"
            )
        if self.size < 32:
            raise UserError(f"size must be at least 32 pixels, got {self.size}")
        if self.seed < 0:
            raise UserError(f"seed must be 0 or more, got {self.seed}")
        if len(self.quality) != 2:
            raise UserError(f"JPEG quality must be a (low, high) pair, got {self.quality}")
        lo, hi = self.quality
        if not 1 <= lo <= hi <= 100:
            raise UserError(
                f"JPEG quality range must satisfy 1 <= low <= high <= 100, got {self.quality}"
            )


@dataclass(frozen=True)
class SynthResult:
    """What :func:`generate_dataset` wrote."""

    out: Path
    counts: dict[str, int]
    n_images: int
    seconds: float


def _check_class(cls: str) -> None:
    if cls not in CLASSES:
        raise UserError(
            f"unknown synthetic class {cls!r}", fix=f"available classes: {', '.join(CLASSES)}"
        )


# --------------------------------------------------------------------------------------------------
# Small drawing primitives. Images are float32 RGB in 0..255 laid out channels first, (3, h, w):
# numpy broadcasts a colour over the rows fast that way, while a trailing axis of 3 makes every
# operation loop three elements at a time and runs several times slower.


def _c(color: _Arr) -> _Arr:
    """An RGB triple shaped to broadcast over a (3, h, w) image."""
    return color.reshape(3, 1, 1)


def _jit(rng: np.random.Generator, base: tuple[float, float, float], spread: float) -> _Arr:
    return np.clip(np.asarray(base, _F32) + rng.uniform(-spread, spread, 3).astype(_F32), 0, 255)


def _pick(
    rng: np.random.Generator, options: Sequence[tuple[float, float, float]], spread: float
) -> _Arr:
    return _jit(rng, options[int(rng.integers(len(options)))], spread)


@functools.cache
def _interp_matrix(n_out: int, n_in: int) -> _Arr:
    """Catmull-Rom weights (n_out, n_in) that resample ``n_in`` samples smoothly to ``n_out``."""
    u = np.linspace(0.0, n_in - 1, n_out)
    i = np.minimum(np.floor(u).astype(int), n_in - 2)
    t = u - i
    weights = (
        (-0.5 * t**3 + t**2 - 0.5 * t),
        (1.5 * t**3 - 2.5 * t**2 + 1.0),
        (-1.5 * t**3 + 2.0 * t**2 + 0.5 * t),
        (0.5 * t**3 - 0.5 * t**2),
    )
    m = np.zeros((n_out, n_in))
    rows = np.arange(n_out)
    for k, wk in enumerate(weights):
        # Edge samples are repeated beyond the grid.
        np.add.at(m, (rows, np.clip(i - 1 + k, 0, n_in - 1)), wk)
    out = m.astype(_F32)
    out.flags.writeable = False  # shared by every caller through the cache
    return out


def _smooth(rng: np.random.Generator, h: int, w: int, cy: int, cx: int) -> _Arr:
    """Value noise in about 0..1: a coarse random grid upsampled smoothly by two small matmuls."""
    cy, cx = max(cy, 2), max(cx, 2)
    small = rng.random((cy, cx), dtype=_F32)
    out: _Arr = _interp_matrix(h, cy) @ small @ _interp_matrix(w, cx).T
    return out


def _fractal(rng: np.random.Generator, h: int, w: int, cy: int, cx: int, octaves: int = 3) -> _Arr:
    out = np.zeros((h, w), _F32)
    amp, total = 1.0, 0.0
    for k in range(octaves):
        out += amp * _smooth(rng, h, w, cy * 2**k, cx * 2**k)
        total += amp
        amp *= 0.5
    return out / total


@functools.cache
def _octaves(w: int, start: int) -> tuple[_Arr, _Arr]:
    """``_ridge``'s interpolation matrices side by side, and the octave of each of their columns."""
    mats, level = [], []
    cells, k = start + 1, 0
    while cells <= w:
        mats.append(_interp_matrix(w, cells))
        level.append(np.full(cells, k))
        cells *= 2
        k += 1
    mat, lev = np.hstack(mats), np.concatenate(level)
    mat.flags.writeable = False
    lev.flags.writeable = False
    return mat, lev


def _ridge(rng: np.random.Generator, w: int, rough: float = 0.55, start: int = 2) -> _Arr:
    """A fractal 1-D profile over ``w`` columns, normalised to 0..1.

    Octaves of ``start + 1``, then twice as many, ... random heights, each ``rough`` times weaker
    than the last: what midpoint displacement gives, as a few cached matrix products.
    """
    mat, level = _octaves(w, start)
    heights = rng.uniform(-1.0, 1.0, len(level)).astype(_F32) * (rough**level).astype(_F32)
    prof = mat @ heights
    lo, hi = prof.min(), prof.max()
    out: _Arr = (prof - lo) / max(float(hi - lo), 1e-6)
    return out


def _band(h: int, top: _Arr, bottom: _Arr | None) -> tuple[int, int]:
    """The rows ``y0:y1`` a region below ``top`` (and above ``bottom``) can touch."""
    y0 = min(max(int(np.floor(top.min())), 0), h)
    y1 = h if bottom is None else min(int(np.ceil(bottom.max())) + 1, h)
    return y0, y1


def _fill(img: _Arr, top: _Arr, color: _Arr, bottom: _Arr | None = None) -> None:
    """Paint ``color`` below the per-column line ``top`` (and above ``bottom``), antialiased.

    Only the rows of ``_band(h, top, bottom)`` are computed: ``color`` is shaped (3, 1, 1) for one
    colour, (3, 1, w) for one per column, or (3, y1 - y0, w) for exactly that band.
    """
    y0, y1 = _band(img.shape[1], top, bottom)
    if y0 >= y1:
        return
    ys = np.arange(y0, y1, dtype=_F32)[:, None]
    alpha = np.clip(ys - top[None, :] + 0.5, 0.0, 1.0)
    if bottom is not None:
        alpha *= np.clip(bottom[None, :] - ys + 0.5, 0.0, 1.0)
    sub = img[:, y0:y1]
    sub += (color - sub) * alpha


def _shade(top: _Arr, sun: float, strength: float, scale: float) -> _Arr:
    """Per-column brightness from the slope of a profile: faces turned to the sun are lit."""
    slope = np.gradient(top)
    return (1.0 + strength * np.tanh(slope * scale * sun)).astype(_F32)


def _to_pil(img: _Arr) -> Image.Image:
    planes = np.clip(img, 0, 255).astype(np.uint8)
    return Image.merge("RGB", [Image.fromarray(p) for p in planes])


def _from_pil(pil: Image.Image) -> _Arr:
    return np.asarray(pil).transpose(2, 0, 1).astype(_F32, order="C")


def _rgb(c: _Arr) -> tuple[int, int, int]:
    return int(c[0]), int(c[1]), int(c[2])


# --------------------------------------------------------------------------------------------------
# Sky and shared scenery.

_SKIES: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "day": ((55, 115, 205), (185, 210, 235)),
    "deep": ((25, 70, 170), (140, 185, 230)),
    "dusk": ((45, 50, 110), (245, 150, 85)),
    "pink": ((95, 90, 160), (240, 175, 160)),
    "overcast": ((140, 145, 155), (200, 202, 206)),
    "haze": ((150, 175, 205), (225, 225, 215)),
}
_WHITE = np.asarray((245, 247, 248), _F32).reshape(3, 1, 1)
_SNOW = np.asarray((238, 242, 250), _F32).reshape(3, 1, 1)


def _sky(
    rng: np.random.Generator, r: int, horizon: int, kinds: tuple[str, ...]
) -> tuple[_Arr, _Arr]:
    """A sky gradient with clouds over the whole canvas; returns it and the horizon colour."""
    kind = kinds[int(rng.integers(len(kinds)))]
    top_c, hor_c = (_jit(rng, c, 18) for c in _SKIES[kind])
    t = np.clip(np.arange(r, dtype=_F32) / max(horizon, 1), 0, 1) ** rng.uniform(0.6, 1.8)
    col = top_c[:, None] + (hor_c - top_c)[:, None] * t[None, :]
    img = np.repeat(col[:, :, None], r, axis=2)
    hz = min(horizon + 1, r)
    cover = rng.uniform(-0.3, 1.0) if kind != "overcast" else rng.uniform(0.5, 1.0)
    if cover > 0:
        cy = int(rng.integers(2, 5))
        n = _fractal(rng, hz, r, cy, cy * int(rng.integers(2, 4)), 3)
        thr = 0.62 - 0.22 * cover
        alpha = np.clip((n - thr) * rng.uniform(4, 9), 0, 1) * rng.uniform(0.6, 1.0)
        light = np.asarray((250, 248, 245), _F32) if kind not in ("dusk", "pink") else hor_c
        dark = light * rng.uniform(0.55, 0.85)
        cloud = _c(dark) + _c(light - dark) * np.clip(n * 1.6 - 0.3, 0, 1)
        sub = img[:, :hz]
        sub += (cloud - sub) * alpha
    if kind in ("dusk", "pink", "day") and rng.random() < 0.4:
        # A sun glow low in the sky makes lighting vary beyond the palette alone.
        sx, sy = rng.uniform(0, r), rng.uniform(0.3, 1.0) * horizon
        yy = np.arange(hz, dtype=_F32)[:, None]
        xx = np.arange(r, dtype=_F32)[None, :]
        d2 = ((xx - sx) ** 2 + (yy - sy) ** 2) / (r * rng.uniform(0.05, 0.2)) ** 2
        glow = np.exp(-d2) * rng.uniform(0.4, 0.9)
        sub = img[:, :hz]
        sub += (_c(np.asarray((255, 245, 215), _F32)) - sub) * glow
    return img, hor_c


def _range(
    rng: np.random.Generator,
    img: _Arr,
    base: float,
    amp: float,
    rock: _Arr,
    haze_col: _Arr,
    haze: float,
    snowline: float | None,
    sun: float,
    rough: float = 0.55,
) -> _Arr:
    """One mountain range: a ridgeline with relief, darker lower slopes, snow above a line.

    Returns the ridgeline (row of the crest in every column).
    """
    h, w = img.shape[1:]
    top = (base - amp * _ridge(rng, w, rough, int(rng.integers(1, 5)))).astype(_F32)
    y0, y1 = _band(h, top, None)
    if y0 >= y1:
        return top
    rows = y1 - y0
    ys = np.arange(y0, y1, dtype=_F32)[:, None]
    depth = np.clip((ys - top[None, :]) / max(amp, 1.0), 0, 1)
    # Relief: spurs and gullies run diagonally down from the crest, so the face is shaded by
    # two rough profiles slid sideways with depth, one each way, lit from the sun's side. The
    # crest's own slope adds the big lit and shadowed faces near the top only, else every column
    # becomes a stripe down to the valley.
    span = 3 * w  # fixed, so that the interpolation matrices are cached
    slant = rng.uniform(0.4, 1.1)
    yi = np.arange(rows, dtype=_F32)[:, None] * slant
    xi = np.arange(w, dtype=_F32)[None, :] + w
    ia = np.clip(xi + yi, 0, span - 1).astype(np.intp)
    ib = np.clip(xi - yi, 0, span - 1).astype(np.intp)
    pa, pb = _ridge(rng, span, 0.58, 8), _ridge(rng, span, 0.58, 8)
    da, db = np.gradient(pa), np.gradient(pb)
    da /= da.std() + 1e-6
    db /= db.std() + 1e-6
    mix = rng.uniform(0.3, 0.7)
    # Patches of smoother slope (scree, snowfields) break the regularity of the hatching.
    patchy = 0.3 + 0.9 * _smooth(rng, rows, w, 3, 4)
    relief = (da[ia] * mix + db[ib] * (1 - mix)) * (sun * patchy)
    crest = (_shade(top, sun, 0.3, 1.0) - 1.0)[None, :] * np.exp(-2.0 * depth)
    shade = np.clip(1.0 + crest + np.tanh(relief * 0.7) * 0.25, 0.45, 1.5)
    # The colour is rock * lit + snow * snow_lit + haze, mixed as scalar fields first: each
    # operation on the three planes costs three times one on a field.
    lit = shade * ((1.0 - 0.3 * depth) * (1.0 - haze))
    if snowline is not None:
        field = pa[ia] * mix + pb[ib] * (1 - mix)
        line = snowline + amp * 0.25 * (_ridge(rng, w, 0.7, 8) - 0.5) + (field - 0.5) * amp * 0.3
        snow = np.clip((line - ys) * 0.5, 0, 1)
        col = _c(rock) * (lit * (1 - snow))
        col += _SNOW * (np.clip(shade * 1.05, 0.55, 1.08) * (snow * (1.0 - haze)))
    else:
        col = _c(rock) * lit
    col += _c(haze_col * haze)
    _fill(img, top, col)
    return top


def _water(
    rng: np.random.Generator, img: _Arr, y_top: int, far: _Arr, near: _Arr, waviness: float
) -> None:
    """Sea or lake from row ``y_top`` down: perspective wave rows, whitecaps, a darker distance."""
    h, w = img.shape[1:]
    rows = h - y_top
    if rows <= 0:
        return
    ys = np.arange(rows, dtype=_F32)[:, None] + 1.0
    t = (ys / rows) ** 0.7
    warp = _smooth(rng, rows, w, 3, int(rng.integers(3, 8))) * 6.0
    # Wave rows get wider towards the viewer: phase in log(distance from horizon).
    wave = np.sin(np.log(ys) * rng.uniform(9, 16) + warp)
    sea = (_c(far) + _c(near - far) * t) * (1.0 + waviness * 0.12 * wave)
    caps = np.clip((wave - 0.85) * 6.0, 0, 1) * (_smooth(rng, rows, w, 4, 10) > 0.55)
    sea += (_WHITE - sea) * (caps * (0.8 * waviness))
    img[:, y_top:] = sea


def _reflect(img: _Arr, y: int, tint: _Arr, dim: float) -> None:
    """Mirror everything above row ``y`` into the water below it, darkened and tinted."""
    h = img.shape[1]
    n = min(h - y, y)
    if n <= 0:
        return
    img[:, y : y + n] = img[:, y - n : y][:, ::-1] * dim + _c(tint) * (1 - dim)


def _blobs(
    rng: np.random.Generator,
    img: _Arr,
    n: int,
    y_min: float,
    base: tuple[float, float, float],
    scale: tuple[float, float],
) -> _Arr:
    """Dark rounded clutter (rocks, shrubs), sized by ``scale`` times the depth below ``y_min``."""
    r = img.shape[1]
    pil = _to_pil(img)
    draw = ImageDraw.Draw(pil)
    cys = rng.uniform(y_min + 2, r, n)
    cxs = rng.uniform(0, r, n)
    sizes = (cys - y_min) * rng.uniform(scale[0], scale[1], n) + 0.6
    cols = np.clip(np.asarray(base) + rng.uniform(-20, 20, (n, 3)), 0, 255).astype(int).tolist()
    for cx, cy, s, c in zip(cxs.tolist(), cys.tolist(), sizes.tolist(), cols, strict=True):
        draw.ellipse((cx - 1.5 * s, cy - s, cx + 1.5 * s, cy + 0.3 * s), fill=tuple(c))
    return _from_pil(pil)


def _treeline(
    rng: np.random.Generator, img: _Arr, base: float, heights: tuple[float, float]
) -> _Arr:
    """A row of dark conifers standing on row ``base``, ``heights`` as fractions of the size."""
    r = img.shape[1]
    pil = _to_pil(img)
    draw = ImageDraw.Draw(pil)
    green = _jit(rng, (35, 65, 40), 12)
    cxs = np.arange(-5, r + 5, r * rng.uniform(0.02, 0.05))
    ths = r * rng.uniform(heights[0], heights[1], len(cxs))
    cols = np.clip(green[None, :] * rng.uniform(0.8, 1.2, (len(cxs), 1)), 0, 255)
    for cx, th, c in zip(cxs.tolist(), ths.tolist(), cols.astype(int).tolist(), strict=True):
        draw.polygon(
            [(cx - th * 0.25, base), (cx + th * 0.25, base), (cx, base - th)], fill=tuple(c)
        )
    return _from_pil(pil)


# --------------------------------------------------------------------------------------------------
# The five classes.


def _coast(rng: np.random.Generator, r: int) -> _Arr:
    h0 = int(r * rng.uniform(0.25, 0.6))
    img, hor = _sky(rng, r, h0, ("day", "day", "deep", "dusk", "pink", "overcast", "haze"))
    sun = 1.0 if rng.random() < 0.5 else -1.0
    if rng.random() < 0.35:
        # Land on the far shore, now and then snowy: mountains behind a coast are common.
        amp = r * rng.uniform(0.03, 0.35)
        snow = h0 - amp * rng.uniform(0.3, 0.7) if rng.random() < 0.3 else None
        rock = _jit(rng, (100, 105, 100), 25)
        _range(rng, img, h0 + 1, amp, rock, hor, rng.uniform(0.4, 0.8), snow, sun)
    elif rng.random() < 0.2:
        # A wooded far shore, as on a lake in a forest.
        img = _treeline(rng, img, h0 + 1.0, (0.02, 0.08))
    palette = [
        ((25, 65, 120), (40, 120, 160)),  # Atlantic blue
        ((20, 110, 140), (60, 190, 185)),  # tropical turquoise
        ((70, 85, 95), (105, 120, 125)),  # stormy grey
        ((30, 70, 110), (70, 140, 150)),
    ]
    far, near = palette[int(rng.integers(len(palette)))]
    _water(rng, img, h0, _jit(rng, far, 15), _jit(rng, near, 20), rng.uniform(0.3, 1.0))
    if rng.random() < 0.35:
        # Glitter of the low sun on the water.
        sx = rng.uniform(0.2, 0.8) * r
        xs = np.arange(r, dtype=_F32)[None, :]
        glit = np.exp(-(((xs - sx) / (r * rng.uniform(0.04, 0.12))) ** 2)) * rng.uniform(0.3, 0.7)
        glit = glit * (_smooth(rng, r - h0, r, 12, 6) > 0.5)
        sub = img[:, h0:]
        sub += (_c(np.asarray((255, 240, 200), _F32)) - sub) * glit
    if rng.random() < 0.4:
        # A cliff or headland on one side, cut off by the frame.
        left = rng.random() < 0.5
        cw = rng.uniform(0.2, 0.55) * r
        xs = np.arange(r, dtype=_F32)
        d = xs if left else (r - 1 - xs)
        prof = np.clip(1.0 - d / cw, 0, 1) ** rng.uniform(0.3, 0.8)
        height = rng.uniform(0.05, 0.3) * r
        top = h0 + 2 - prof * height - (_ridge(rng, r, 0.6) - 0.5) * r * 0.04
        top = np.where(prof > 0, top, r + 10.0).astype(_F32)
        y0, _ = _band(r, top, None)
        rock = _jit(rng, (120, 105, 90), 22)
        ys = np.arange(y0, r, dtype=_F32)[:, None]
        strata = 0.85 + 0.3 * _smooth(rng, r - y0, r, int(rng.integers(8, 20)), 3)
        # The face turned to the sun is lit evenly: no per-column shading, which would streak.
        face = (0.8 + 0.4 * prof) if sun > 0 else (1.2 - 0.4 * prof)
        cliff = _c(rock) * (strata * face[None, :])
        if rng.random() < 0.6:
            grass = np.clip((ys - top[None, :]) / 4.0, 0, 1)
            green = _c(_jit(rng, (80, 115, 55), 25))
            cliff = green + (cliff - green) * grass
        _fill(img, top, cliff)
    if rng.random() < 0.8:
        # The beach: wet sand and a foam line along a wavy shoreline.
        ys0 = h0 + (r - h0) * rng.uniform(0.3, 0.8)
        xs = np.arange(r, dtype=_F32)
        shore = (
            ys0
            + np.sin(xs / r * rng.uniform(2, 8) + rng.uniform(0, 6)) * r * 0.03
            + (xs / r - 0.5) * r * rng.uniform(-0.3, 0.3)
        ).astype(_F32)
        sands = [
            (215, 195, 155),
            (200, 180, 140),
            (225, 210, 180),
            (120, 115, 110),
            (185, 160, 120),
        ]
        sand = _pick(rng, sands, 15)
        y0, _ = _band(r, shore, None)
        rows = r - y0
        tex = 0.9 + 0.2 * _fractal(rng, rows, r, 4, 8, 2)
        ys = np.arange(y0, r, dtype=_F32)[:, None]
        wet = np.clip(1.0 - (ys - shore[None, :]) / (r * 0.05), 0, 1) * 0.3
        _fill(img, shore, _c(sand) * (tex * (1 - wet)))
        foam = np.clip(1.5 - np.abs(ys - shore[None, :] + 1) / 1.5, 0, 1)
        foam *= _smooth(rng, rows, r, 2, 12) > 0.35
        sub = img[:, y0:]
        sub += (_WHITE - sub) * (foam * 0.85)
    if rng.random() < 0.3:
        img = _blobs(rng, img, int(rng.integers(1, 6)), h0, (60, 55, 50), (0.03, 0.15))
    return img


def _desert(rng: np.random.Generator, r: int) -> _Arr:
    h0 = int(r * rng.uniform(0.25, 0.6))
    img, hor = _sky(rng, r, h0, ("day", "deep", "deep", "haze", "haze", "dusk", "pink"))
    sun = 1.0 if rng.random() < 0.5 else -1.0
    sands = [(215, 150, 90), (225, 180, 120), (225, 205, 170), (185, 105, 65), (200, 170, 130)]
    sand = _pick(rng, sands, 15)
    if rng.random() < 0.45:
        # Mesas or a rocky range on the horizon: flat tops come from clipping a ridge.
        amp = r * rng.uniform(0.05, 0.35)
        prof = np.minimum(_ridge(rng, r, 0.5) * rng.uniform(1.0, 2.0), 1.0)
        top = (h0 + 1 - amp * prof).astype(_F32)
        y0, _ = _band(r, top, None)
        ys = np.arange(y0, r, dtype=_F32)[:, None]
        fade = np.exp(-np.clip(ys - top[None, :], 0, None) / max(amp * 0.5, 1.0))
        lit = (_shade(top, sun, 0.3, 1.0) - 1.0)[None, :] * fade
        col = _c(sand * rng.uniform(0.55, 0.8)) * (1.0 + lit)
        col += (_c(hor) - col) * rng.uniform(0.2, 0.6)
        _fill(img, top, col)
    else:
        _fill(img, np.full(r, h0 + 1, _F32), _c(sand + (hor - sand) * 0.5))
    n = int(rng.integers(3, 6))
    xs = np.arange(r, dtype=_F32)
    tex_all = _smooth(rng, r, r, 6, 6)
    rip_f = rng.uniform(0.6, 1.6)
    rip_phase = rng.uniform(0, 6.3)
    for i in range(n):
        f = (i + 1) / n
        base = h0 + (r - h0) * (f ** rng.uniform(0.8, 1.4)) * rng.uniform(0.85, 1.05) + 2
        amp = (r - h0) * rng.uniform(0.1, 0.35) * (0.4 + f)
        freq = rng.uniform(0.6, 2.5) / r * (2.2 - f) * 2 * np.pi
        u = xs * freq + rng.uniform(0, 6.3)
        # A skewed sine: gentle windward slope, steep slip face, sharp crest.
        wave = 0.5 + 0.5 * np.sin(u + rng.uniform(0.3, 0.9) * np.sin(u))
        wave = wave ** rng.uniform(0.8, 1.5) + 0.15 * _ridge(rng, r, 0.5)
        top = (base - amp * wave).astype(_F32)
        lit = _shade(top, sun, rng.uniform(0.25, 0.45), 3.0) - 1.0
        y0, _ = _band(r, top, None)
        ys = np.arange(y0, r, dtype=_F32)[:, None]
        # The slip face shadow hangs below the crest and fades into the dune's body.
        fade = np.exp(-np.clip(ys - top[None, :], 0, None) / max(amp * 0.6, 1.0))
        brightness = (1.0 + lit[None, :] * fade) * (0.93 + 0.14 * tex_all[y0:])
        if f > 0.4:
            ripples = np.sin(ys * rip_f * (1 + f) + xs[None, :] * 0.15 + rip_phase)
            brightness = brightness * (1.0 + 0.04 * ripples)
        col = _c(sand * rng.uniform(0.92, 1.08)) * brightness
        col += (_c(hor) - col) * (0.45 * (1 - f) ** 1.5)
        _fill(img, top, col)
    if rng.random() < 0.1:
        # A salt flat after rain mirrors the sky, like a calm sea.
        y = int(h0 + (r - h0) * rng.uniform(0.3, 0.7))
        _reflect(img, y, _jit(rng, (200, 200, 205), 20), rng.uniform(0.6, 0.85))
    if rng.random() < 0.35:
        # Shrubs, stones or a lone acacia: clutter that forests and coasts also have.
        img = _blobs(rng, img, int(rng.integers(2, 25)), h0, (80, 75, 45), (0.01, 0.04))
        if rng.random() < 0.3:
            pil = _to_pil(img)
            draw = ImageDraw.Draw(pil)
            cx, cy = rng.uniform(0.1, 0.9) * r, h0 + (r - h0) * rng.uniform(0.2, 0.6)
            hgt = r * rng.uniform(0.08, 0.2)
            draw.line((cx, cy, cx, cy - hgt), fill=(70, 55, 40), width=max(1, r // 80))
            crown = (cx - hgt * 0.8, cy - hgt * 1.2, cx + hgt * 0.8, cy - hgt * 0.8)
            draw.ellipse(crown, fill=_rgb(_jit(rng, (70, 90, 45), 20)))
            img = _from_pil(pil)
    return img


_GREENS = [(40, 95, 40), (30, 70, 35), (65, 115, 45), (25, 55, 40), (85, 125, 55), (45, 85, 60)]
_AUTUMN = [(200, 120, 35), (220, 170, 50), (170, 60, 30), (150, 130, 50), (120, 110, 40)]


def _forest(rng: np.random.Generator, r: int) -> _Arr:
    open_sky = rng.random() < 0.75
    h0 = int(r * rng.uniform(0.15, 0.55)) if open_sky else int(r * rng.uniform(0.0, 0.1))
    img, hor = _sky(rng, r, max(h0, 4), ("day", "day", "deep", "overcast", "haze", "dusk"))
    sun = 1.0 if rng.random() < 0.5 else -1.0
    if open_sky and rng.random() < 0.35:
        # Hills or peaks behind the trees.
        amp = r * rng.uniform(0.05, 0.4)
        snow = h0 - amp * rng.uniform(0.4, 0.8) if rng.random() < 0.3 else None
        rock = _jit(rng, (85, 100, 85), 20)
        _range(rng, img, h0 + r * 0.05, amp, rock, hor, rng.uniform(0.3, 0.7), snow, sun)
    snowy = rng.random() < 0.1
    style = rng.random()  # low: conifers, high: broadleaf, mixed between
    autumn = rng.random() < 0.3
    if snowy:
        ground = _jit(rng, (240, 242, 248), 8)
    else:
        ground = _pick(rng, [(70, 100, 40), (95, 80, 50), (60, 80, 45), (120, 110, 60)], 15)
    gy = int(h0 + (r - h0) * rng.uniform(0.1, 0.4))
    img[:, gy:] = _c(ground) * (0.8 + 0.4 * _fractal(rng, r - gy, r, 4, 8, 2))
    if not open_sky:
        # Under the canopy: a dark green backdrop instead of sky.
        back = _pick(rng, _GREENS, 10) * rng.uniform(0.4, 0.7)
        img[:, :gy] = _c(back) * (0.8 + 0.4 * _smooth(rng, gy, r, 4, 6))
    pil = _to_pil(img)
    draw = ImageDraw.Draw(pil)
    n_rows = int(rng.integers(3, 7))
    density = rng.uniform(0.35, 0.8)
    conifer_p = 1.25 - style * 1.5
    pal = np.asarray(_AUTUMN if autumn else _GREENS, _F32)
    trunk_c = np.asarray((70, 50, 35), _F32)
    for j in range(n_rows):
        f = (j + 1) / n_rows
        base_y = gy + (r * 1.15 - gy) * f**1.3
        tree_h = r * (0.08 + 0.5 * f**1.5) * rng.uniform(0.8, 1.3)
        tree_w = tree_h * rng.uniform(0.25, 0.5)
        # Far rows are mostly hidden by near ones: capping them keeps the draw calls affordable.
        n_trees = min(int(r / (tree_w * density)) + 2, 24)
        # Small far trees need fewer shapes to read as trees.
        small = tree_h < r * 0.12
        n_tiers, n_blobs = (2, 3) if small else (3, 5)
        cxs = np.linspace(-tree_w, r + tree_w, n_trees) + rng.uniform(-0.4, 0.4, n_trees) * tree_w
        hs = tree_h * rng.uniform(0.75, 1.25, n_trees)
        bys = base_y + rng.uniform(-0.1, 0.1, n_trees) * tree_h
        conifer = rng.random(n_trees) < conifer_p
        haze = 0.55 * (1 - f) ** 1.5 if open_sky else 0.0
        cols: _Arr = pal[rng.integers(len(pal), size=n_trees)]
        if autumn:
            # Autumn woods keep some evergreens.
            cols[rng.random(n_trees) < 0.3] = np.asarray(_GREENS[1], _F32)
        cols = cols * (rng.uniform(0.75, 1.2, n_trees) * (0.7 + 0.3 * f))[:, None]
        cols = cols + (hor - cols) * haze
        jit = rng.uniform(-1, 1, (n_trees, 6, 3)).astype(_F32)
        # Per-shape colours: conifer tiers lighten upwards, broadleaf blobs are lit on one side.
        tier_k = np.asarray([0.85, 0.95, 1.05, 1.0, 1.0, 1.0], _F32)[None, :]
        light = np.where(conifer[:, None], tier_k, 1.0 + 0.12 * sun * jit[:, :, 0])
        shape_cols = np.clip(cols[:, None, :] * light[..., None] + jit * 9, 0, 255)
        shape_cols_l = shape_cols.astype(np.int32).tolist()
        trunk = _rgb(trunk_c + (hor - trunk_c) * haze)
        ox = (jit[:, :, 0] * 0.22 * hs[:, None]).tolist()
        oy = (-0.65 * hs[:, None] + jit[:, :, 1] * 0.18 * hs[:, None]).tolist()
        rr = ((0.16 + 0.06 * jit[:, :, 2]) * hs[:, None]).tolist()
        for t, (cx, by, th) in enumerate(zip(cxs.tolist(), bys.tolist(), hs.tolist(), strict=True)):
            is_conifer = bool(conifer[t])
            if not small:  # far trunks are hidden by the next row anyway
                tw = max(1, int(th * 0.04))
                trunk_top = by - th * (0.3 if is_conifer else 0.55)
                draw.line((cx, by, cx, trunk_top), fill=trunk, width=tw)
            sc = shape_cols_l[t]
            if is_conifer:
                for k in range(n_tiers):
                    y_b = by - th * (0.15 + 0.25 * k)
                    half = th * 0.28 * (1 - 0.25 * k)
                    tier = [(cx - half, y_b), (cx + half, y_b), (cx, y_b - th * 0.45)]
                    draw.polygon(tier, fill=tuple(sc[k]))
                if snowy:
                    tip = [
                        (cx - th * 0.08, by - th * 0.8),
                        (cx + th * 0.08, by - th * 0.8),
                        (cx, by - th * 0.95),
                    ]
                    draw.polygon(tip, fill=(235, 238, 245))
            else:
                ox_t, oy_t, rr_t = ox[t], oy[t], rr[t]
                for k in range(n_blobs):
                    x, y, q = cx + ox_t[k], by + oy_t[k], rr_t[k]
                    draw.ellipse((x - q, y - q, x + q, y + q * 0.9), fill=tuple(sc[k]))
    img = _from_pil(pil)
    if snowy:
        # Snow lying on the canopy and the ground, not in the sky.
        flecks = _smooth(rng, r - h0, r, r // 5, r // 5) > rng.uniform(0.62, 0.75)
        sub = img[:, h0:]
        sub += (_SNOW - sub) * (flecks * 0.8)
    return img


def _glacier(rng: np.random.Generator, r: int) -> _Arr:
    h0 = int(r * rng.uniform(0.2, 0.5))
    img, hor = _sky(rng, r, h0, ("day", "deep", "deep", "overcast", "haze", "pink"))
    sun = 1.0 if rng.random() < 0.5 else -1.0
    if rng.random() < 0.75:
        # Rock walls and snowy peaks around the ice.
        amp = r * rng.uniform(0.08, 0.35)
        snow = h0 - amp * rng.uniform(0.2, 0.9) if rng.random() < 0.7 else None
        rock = _jit(rng, (75, 75, 80), 20)
        _range(rng, img, h0 + 2, amp, rock, hor, rng.uniform(0.05, 0.4), snow, sun)
    tidewater = rng.random() < 0.2
    # A smooth snowfield high on a glacier, without crevasses, is hard to tell from a snowy slope.
    snowfield = not tidewater and rng.random() < 0.2
    ice_white = _jit(rng, (232, 240, 248), 10)
    ice_blue = _jit(rng, (140, 185, 225), 20)
    blue_amt = rng.uniform(0.2, 0.9)
    rows = r - h0
    n = _fractal(rng, rows, r, 3, int(rng.integers(4, 9)), 3)
    ys = np.arange(rows, dtype=_F32)[:, None] / max(rows, 1)
    t = np.clip(n * blue_amt * 1.6 - 0.25, 0, 1) ** 1.5
    ice = (_c(ice_white) + _c(ice_blue - ice_white) * t) * (
        rng.uniform(0.85, 1.0) + rng.uniform(-0.1, 0.1) * ys
    )
    if rng.random() < 0.5:
        # Dirty ice: streaks of grey debris along the flow.
        dirt = _smooth(rng, rows, r, 2, int(rng.integers(6, 16)))
        dirt_amt = np.clip((dirt - 0.6) * 3, 0, 1) * rng.uniform(0.15, 0.5)
        ice += (_c(np.asarray((110, 105, 100), _F32)) - ice) * dirt_amt
    vx = rng.uniform(0.2, 0.8) * r  # where the ice flows from, on the horizon
    if not tidewater and rng.random() < 0.25:
        # A medial moraine: a band of debris that narrows towards the far end of the glacier.
        x_near = rng.uniform(-0.2, 1.2) * r
        depth = np.arange(rows, dtype=_F32)[:, None] / max(rows - 1, 1)
        centre = vx + (x_near - vx) * depth
        half = r * 0.004 + r * rng.uniform(0.02, 0.08) * depth
        xs = np.arange(r, dtype=_F32)[None, :]
        amt = np.clip(half - np.abs(xs - centre) + 0.5, 0, 1)
        amt *= 0.55 + 0.45 * _smooth(rng, rows, r, 8, 12)
        ice += (_c(_jit(rng, (85, 80, 75), 15)) - ice) * amt
    img[:, h0:] = ice
    pil = _to_pil(img)
    draw = ImageDraw.Draw(pil)
    if tidewater:
        # A calving front above dark water, with floating ice: looks like a coast at a glance.
        wy = int(h0 + rows * rng.uniform(0.3, 0.6))
        draw.rectangle((0, wy, r, r), fill=_rgb(_jit(rng, (40, 60, 75), 15)))
        for _ in range(int(rng.integers(2, 12))):
            cx, cy = rng.uniform(0, r), rng.uniform(wy + 2, r)
            s = (cy - wy) * rng.uniform(0.05, 0.25) + 1
            berg = [
                (cx - s, cy),
                (cx + s, cy),
                (cx + s * 0.5, cy - s * 0.8),
                (cx - s * 0.3, cy - s),
            ]
            draw.polygon(berg, fill=_rgb(_jit(rng, (225, 235, 245), 10)))
    else:
        wy = r
    crev = _jit(rng, (45, 85, 140), 20)
    k = 0 if snowfield else int(rng.integers(6, 35))
    fs = rng.random(k) ** 0.8
    lengths = r * rng.uniform(0.05, 0.35, k) * (0.3 + fs)
    centres = rng.uniform(-0.1, 1.1, k) * r
    tilts = rng.uniform(-0.15, 0.15, k)
    wobble = rng.normal(0, 1, (k, 4))
    widths = rng.random(k)
    shades = rng.uniform(0.6, 1.1, k)
    for f, length, cx, tilt, wob, wr, sh in zip(
        fs, lengths, centres, tilts, wobble, widths, shades, strict=True
    ):
        y = h0 + (wy - h0) * f
        if y >= wy - 1:
            continue
        xs = np.linspace(cx - length / 2, cx + length / 2, 4)
        # Crevasses open across the flow and curve with it.
        ys_line = y + (xs - vx) * tilt + wob * (0.4 + 1.2 * f)
        width = max(1, int(1 + 3 * f * wr))
        pts = list(zip(xs.tolist(), ys_line.tolist(), strict=True))
        draw.line(pts, fill=_rgb(crev * sh), width=width)
    if rng.random() < 0.3:
        # A nunatak: bare rock sticking out of the ice.
        cx, cy = rng.uniform(0, r), h0 + rows * rng.uniform(0.1, 0.6)
        s = r * rng.uniform(0.03, 0.12)
        angles = np.linspace(0, 2 * np.pi, 7)
        px = cx + s * np.cos(angles) * rng.uniform(0.6, 1.4, 7)
        py = cy + 0.5 * s * np.sin(angles) * rng.uniform(0.6, 1.4, 7)
        pts = list(zip(px.tolist(), py.tolist(), strict=True))
        draw.polygon(pts, fill=_rgb(_jit(rng, (60, 58, 55), 15)))
    return _from_pil(pil)


def _mountain(rng: np.random.Generator, r: int) -> _Arr:
    h0 = int(r * rng.uniform(0.4, 0.75))
    img, hor = _sky(rng, r, h0, ("day", "day", "deep", "dusk", "pink", "overcast", "haze"))
    sun = 1.0 if rng.random() < 0.5 else -1.0
    n = int(rng.integers(2, 5))
    amp0 = r * rng.uniform(0.15, 0.4)
    rocks = [(110, 105, 100), (125, 110, 95), (95, 95, 105), (140, 125, 110), (80, 85, 75)]
    rock = _pick(rng, rocks, 15)
    snowy = rng.random() < 0.7
    snowline = h0 - amp0 * rng.uniform(0.2, 0.75) if snowy else None
    haze0 = rng.uniform(0.3, 0.75)
    valley = rng.uniform(0.05, 0.3)
    for i in range(n):
        f = i / max(n - 1, 1)  # 0 = farthest range, 1 = nearest
        base = h0 + (r - h0) * valley * f * 2
        amp = amp0 * (1.0 - 0.45 * f) * rng.uniform(0.8, 1.1)
        haze = haze0 * (1 - f) ** 1.3
        col = rock * (0.75 + 0.25 * (1 - f))
        _range(rng, img, base, amp, col, hor, haze, snowline, sun, rng.uniform(0.5, 0.62))
    fg = rng.random()
    if fg < 0.25:
        # A meadow in the valley.
        top = (r * rng.uniform(0.8, 0.95) - (_ridge(rng, r, 0.4) * r * 0.05)).astype(_F32)
        meadow = _jit(rng, (90, 125, 55), 25)
        y0, _ = _band(r, top, None)
        _fill(img, top, _c(meadow) * (0.8 + 0.4 * _smooth(rng, r - y0, r, 3, 10)))
    elif fg < 0.45:
        # A lake that mirrors the peaks: water that is not the sea.
        y = int(r * rng.uniform(0.7, 0.92))
        _reflect(img, y, _jit(rng, (40, 70, 90), 15), rng.uniform(0.5, 0.8))
    elif fg < 0.55:
        # A snowfield in the foreground, as on a glacier but without crevasses.
        top = (r * rng.uniform(0.7, 0.92) - _ridge(rng, r, 0.45) * r * 0.08).astype(_F32)
        y0, _ = _band(r, top, None)
        tone = 0.82 + 0.18 * _fractal(rng, r - y0, r, 3, 6, 2)
        _fill(img, top, _c(_jit(rng, (228, 234, 244), 10)) * tone)
    elif fg < 0.68:
        # A row of conifers at the foot of the slope.
        img = _treeline(rng, img, r * rng.uniform(0.9, 1.05), (0.05, 0.14))
    return img


_RENDERERS: dict[str, Callable[[np.random.Generator, int], _Arr]] = {
    "coast": _coast,
    "desert": _desert,
    "forest": _forest,
    "glacier": _glacier,
    "mountain": _mountain,
}

# --------------------------------------------------------------------------------------------------
# Camera: exposure, white balance, lens softness and sensor noise.

_NOISE_TILE = 256
_noise_cache: dict[tuple[int, int], Image.Image] = {}


def _noise_image(size: int, level: int) -> Image.Image:
    """Sensor noise around grey 128, made once per size and level: fresh noise per image is slow.

    A fixed tile repeated over ``size + _NOISE_TILE`` pixels, so any window of ``size`` pixels at an
    offset below the tile's size is a crop.
    """
    key = (size, level)
    if key not in _noise_cache:
        gen = np.random.default_rng(20240611)
        tile = np.clip(np.rint(gen.normal(0.0, 2.0, (_NOISE_TILE, _NOISE_TILE, 3))), -6, 6)
        reps = -(-(size + _NOISE_TILE) // _NOISE_TILE)
        big = np.tile(tile * level + 128, (reps, reps, 1)).astype(np.uint8)
        _noise_cache[key] = Image.fromarray(big)
    return _noise_cache[key]


_vignettes: dict[int, _Arr] = {}


def _vignette(r: int) -> _Arr:
    if r not in _vignettes:
        c = (r - 1) / 2
        d = np.arange(r, dtype=_F32) - c
        _vignettes[r] = (d[:, None] ** 2 + d[None, :] ** 2) / (2 * c * c)
    return _vignettes[r]


def _finish(rng: np.random.Generator, img: _Arr, size: int) -> Image.Image:
    r = img.shape[1]
    sat = rng.uniform(0.7, 1.25)
    wb = (1.0 + rng.uniform(-0.07, 0.07, 3)).astype(_F32)
    contrast = rng.uniform(0.85, 1.15)
    # Now and then a badly underexposed shot.
    exposure = rng.uniform(0.82, 1.12) if rng.random() > 0.06 else rng.uniform(0.35, 0.6)
    gain = wb * (exposure * contrast)
    # Saturation, contrast, exposure and white balance folded into one affine map per channel.
    gray = (img[0] + img[1] + img[2]) * (1 / 3)
    offset = gain * (128.0 * (1 - contrast) / contrast)
    img = img * _c(gain * sat) + gray * _c(gain * (1 - sat)) + _c(offset)
    if rng.random() < 0.2:
        # Mist or haze washes out colour and texture, the main cues a classifier could lean on.
        img += (_c(_jit(rng, (200, 205, 210), 20)) - img) * rng.uniform(0.25, 0.7)
    if rng.random() < 0.4:
        img *= 1.0 - rng.uniform(0.15, 0.45) * _vignette(r)
    pil = _to_pil(img)
    if rng.random() < 0.25:
        # Blurring before the upscale costs a quarter and looks the same.
        pil = pil.filter(ImageFilter.GaussianBlur(rng.uniform(0.2, 0.6)))
    box = (0.0, 0.0, float(r), float(r))
    if rng.random() < 0.4:
        # A tighter framing shows part of the scene only, sometimes little more than sky or ground.
        side = rng.uniform(0.35, 0.85) * r
        x0, y0 = rng.uniform(0, r - side), rng.uniform(0, r - side)
        box = (x0, y0, x0 + side, y0 + side)
    if r != size or box[2] - box[0] != r:
        pil = pil.resize((size, size), Image.Resampling.BILINEAR, box=box)
    level = int(rng.integers(0, 4))
    oy, ox = (int(v) for v in rng.integers(0, _NOISE_TILE, 2))
    if rng.random() < 0.5:
        pil = pil.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if level:
        noise = _noise_image(size, level).crop((ox, oy, ox + size, oy + size))
        pil = ImageChops.add(pil, noise, 1.0, -128)
    return pil


def render_landscape(cls: str, rng: np.random.Generator, size: int = 224) -> Image.Image:
    """Draw one RGB landscape of class ``cls`` as a ``size``×``size`` image.

    All randomness comes from ``rng``, so the same generator state gives the same picture.
    """
    _check_class(cls)
    if size < 32:
        raise UserError(f"size must be at least 32 pixels, got {size}")
    r = max(_MIN_RENDER, round(size * _RENDER_SCALE))
    return _finish(rng, _RENDERERS[cls](rng, r), size)


# --------------------------------------------------------------------------------------------------
# EXIF and the dataset writer.


def _dms(value: float) -> tuple[IFDRational, IFDRational, IFDRational]:
    # Rounding once, in hundredths of a second, avoids a "60.00 seconds" carry.
    hundredths = round(value * 360_000)
    deg, rest = divmod(hundredths, 360_000)
    minutes, sec = divmod(rest, 6_000)
    return IFDRational(deg, 1), IFDRational(minutes, 1), IFDRational(sec, 100)


def _exif(cls: str, rng: np.random.Generator) -> Image.Exif:
    when = datetime(2012, 1, 1) + timedelta(seconds=int(rng.integers(0, 12 * 365 * 86400)))
    stamp = when.strftime("%Y:%m:%d %H:%M:%S")
    boxes = _GPS_REGIONS[cls]
    lat0, lat1, lon0, lon1 = boxes[int(rng.integers(len(boxes)))]
    lat, lon = rng.uniform(lat0, lat1), rng.uniform(lon0, lon1)
    exif = Image.Exif()
    exif[0x010F] = _CAMERA_MAKE
    exif[0x0110] = _CAMERA_MODEL
    exif[0x0131] = "landscape.data.synth"
    exif[0x0132] = stamp
    exif[0x010E] = f"synthetic {cls} landscape"
    sub = exif.get_ifd(0x8769)
    sub[0x9003] = stamp  # DateTimeOriginal
    sub[0x9004] = stamp  # DateTimeDigitized
    gps = exif.get_ifd(0x8825)
    gps[0x0000] = b"\x02\x03\x00\x00"
    gps[0x0001] = "N" if lat >= 0 else "S"
    gps[0x0002] = _dms(abs(lat))
    gps[0x0003] = "E" if lon >= 0 else "W"
    gps[0x0004] = _dms(abs(lon))
    return exif


def generate_dataset(
    out: Path, spec: SynthSpec, progress: Callable[[int, int], None] | None = None
) -> SynthResult:
    """Write ``spec.per_class`` JPEGs per class as ``out/<class>/<class>_<00000>.jpg``.

    ``progress(done, total)`` is called after every image. Existing files of the same names are
    overwritten; other files in ``out`` are left alone.
    """
    start = time.perf_counter()
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError("exists and is not a folder", path=out, fix="choose another output path")
    total = spec.per_class * len(spec.classes)
    lo, hi = spec.quality
    done = 0
    counts: dict[str, int] = {}
    for cls in spec.classes:
        # The global class index keeps a class's images the same whatever subset is asked for.
        ci = CLASSES.index(cls)
        folder = out / cls
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(spec.per_class):
            rng = np.random.default_rng([spec.seed, ci, i])
            img = render_landscape(cls, rng, spec.size)
            quality = int(rng.integers(lo, hi + 1))
            exif = _exif(cls, rng)
            img.save(folder / f"{cls}_{i:05d}.jpg", "JPEG", quality=quality, exif=exif)
            done += 1
            if progress is not None:
                progress(done, total)
        counts[cls] = spec.per_class
    return SynthResult(out, counts, done, time.perf_counter() - start)

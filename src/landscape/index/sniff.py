"""What a file holds, told from its first bytes: an image, a video or something else.

Extensions lie (a PNG saved as ``.jpg``, a phone's ``.heic`` renamed ``.jpeg``, a text file named
``photo.jpg``), so the index decides from magic numbers only. Fixed signatures are one table;
the containers whose kind depends on what they carry (ISO base media ``ftyp`` brands, RIFF
form types, the EBML DocType, MPEG transport streams) each have a small table of their own.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = ["HEAD_SIZE", "MediaType", "Sniffed", "sniff_bytes", "sniff_file"]

MediaType = Literal["image", "video", "other"]

#: Bytes read from the start of a file: enough for every signature below, including an EBML
#: header with its DocType and a dozen MPEG-TS packets.
HEAD_SIZE: int = 4096


@dataclass(frozen=True)
class Sniffed:
    """The kind of a file: ``media_type``, its MIME type and a short format name (``"JPEG"``).

    ``mime`` and ``format`` are None for ``"other"``.
    """

    media_type: MediaType
    mime: str | None
    format: str | None


_OTHER = Sniffed("other", None, None)


def _image(mime: str, fmt: str) -> Sniffed:
    return Sniffed("image", mime, fmt)


def _video(mime: str, fmt: str) -> Sniffed:
    return Sniffed("video", mime, fmt)


_JPEG = _image("image/jpeg", "JPEG")
_TIFF = _image("image/tiff", "TIFF")
_HEIC = _image("image/heic", "HEIC")
_HEIF = _image("image/heif", "HEIF")
_AVIF = _image("image/avif", "AVIF")
_MP4 = _video("video/mp4", "MP4")
_MOV = _video("video/quicktime", "MOV")
_M4V = _video("video/x-m4v", "M4V")
_3GP = _video("video/3gpp", "3GP")
_MKV = _video("video/x-matroska", "MKV")
_WEBM = _video("video/webm", "WebM")
_MPEG = _video("video/mpeg", "MPEG-PS")


# --------------------------------------------------------------------------------------------------
# Fixed signatures: (offset, magic) → kind.

_MAGIC: tuple[tuple[int, bytes, Sniffed], ...] = (
    (0, b"\xff\xd8\xff", _JPEG),
    (0, b"\x89PNG\r\n\x1a\n", _image("image/png", "PNG")),
    (0, b"GIF87a", _image("image/gif", "GIF")),
    (0, b"GIF89a", _image("image/gif", "GIF")),
    (0, b"II*\x00", _TIFF),
    (0, b"MM\x00*", _TIFF),
    (0, b"II+\x00", _TIFF),  # BigTIFF
    (0, b"MM\x00+", _TIFF),
    (0, b"\x00\x00\x01\xba", _MPEG),  # MPEG program stream pack header
    (0, b"\x00\x00\x01\xb3", _video("video/mpeg", "MPEG")),  # MPEG-1/2 video sequence header
    (0, b"FLV\x01", _video("video/x-flv", "FLV")),
    (0, b"\x30\x26\xb2\x75\x8e\x66\xcf\x11", _video("video/x-ms-asf", "ASF")),  # WMV
)


def _magic(head: bytes) -> Sniffed | None:
    for offset, magic, kind in _MAGIC:
        if head.startswith(magic, offset):
            return kind
    return None


# "BM" alone is two letters any text may start with; the DIB header size pins a real bitmap.
_BMP_DIB_SIZES = frozenset({12, 16, 40, 52, 56, 64, 108, 124})


def _bmp(head: bytes) -> Sniffed | None:
    if len(head) < 18 or not head.startswith(b"BM"):
        return None
    (dib_size,) = struct.unpack_from("<I", head, 14)
    return _image("image/bmp", "BMP") if dib_size in _BMP_DIB_SIZES else None


# --------------------------------------------------------------------------------------------------
# RIFF: the form type at offset 8 says what the chunks hold.

_RIFF_FORMS: dict[bytes, Sniffed] = {
    b"WEBP": _image("image/webp", "WebP"),
    b"AVI ": _video("video/x-msvideo", "AVI"),
}


def _riff(head: bytes) -> Sniffed | None:
    if not head.startswith(b"RIFF"):
        return None
    return _RIFF_FORMS.get(head[8:12], _OTHER)  # WAVE and the rest are not media we index


# --------------------------------------------------------------------------------------------------
# ISO base media (MP4, MOV, HEIF, AVIF): the major and compatible brands of the ``ftyp`` box.
# Each brand has a specificity; the most specific brand wins, the major brand on a tie. An HEIF
# file from a phone may say ``mif1`` (generic) first and ``heic`` (specific) later, and an MP4
# lists generic ``isom``/``mp41``: ``heic`` over ``mif1``, but ``mif1`` over a compatible ``iso8``.

_SPECIFIC, _GENERIC = 2, 1
_BRANDS: dict[bytes, tuple[int, Sniffed]] = {
    **{b: (_SPECIFIC, _HEIC) for b in (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx")},
    **{b: (_SPECIFIC, _AVIF) for b in (b"avif", b"avis")},
    **{b: (_GENERIC, _HEIF) for b in (b"mif1", b"msf1")},
    b"qt  ": (_SPECIFIC, _MOV),
    **{b: (_SPECIFIC, _M4V) for b in (b"M4V ", b"M4VH", b"M4VP")},
    **{b: (_SPECIFIC, _3GP) for b in (b"3gp4", b"3gp5", b"3gp6", b"3gg6", b"3g2a")},
    # Audio-only and raw-photo flavours list generic MP4 brands too; their own brand wins.
    **{b: (_SPECIFIC, _OTHER) for b in (b"M4A ", b"M4B ", b"M4P ", b"F4A ", b"F4B ", b"crx ")},
    **{
        b: (_GENERIC, _MP4)
        for b in (
            *(b"isom", b"iso2", b"iso3", b"iso4", b"iso5", b"iso6", b"iso8"),
            *(b"mp41", b"mp42", b"avc1", b"hvc1", b"dash", b"mmp4", b"MSNV", b"NDAS", b"XAVC"),
            *(b"f4v ", b"kddi"),
        )
    },
}
# Boxes a QuickTime file written before ``ftyp`` existed may start with.
_QUICKTIME_FIRST_BOXES = frozenset({b"moov", b"mdat"})


def _iso_bmff(head: bytes) -> Sniffed | None:
    if len(head) < 12:
        return None
    box = head[4:8]
    if box in _QUICKTIME_FIRST_BOXES:
        return _MOV
    if box == b"wide" and head[12:16] == b"mdat":  # an 8-byte padding box, then the media data
        return _MOV
    if box != b"ftyp":
        return None
    (size,) = struct.unpack_from(">I", head, 0)
    end = min(max(size, 16), len(head))
    brands = [head[8:12]] + [head[i : i + 4] for i in range(16, end - 3, 4)]
    ranked = [
        (_BRANDS[brand][0], -position, _BRANDS[brand][1])
        for position, brand in enumerate(brands)
        if brand in _BRANDS
    ]
    if not ranked:
        return _OTHER  # JPEG 2000, MPEG-21 and other ISO files we do not decode
    return max(ranked, key=lambda r: (r[0], r[1]))[2]


# --------------------------------------------------------------------------------------------------
# Matroska / WebM: an EBML header whose DocType element (ID 0x4282) names the flavour. A missing
# DocType means "matroska", the default of the specification.

_EBML_MAGIC = b"\x1a\x45\xdf\xa3"
_DOCTYPES: dict[bytes, Sniffed] = {b"webm": _WEBM, b"matroska": _MKV}


def _ebml_doctype(head: bytes) -> bytes | None:
    at = head.find(b"\x42\x82", len(_EBML_MAGIC))
    if at < 0 or at + 2 >= len(head):
        return None
    first = head[at + 2]
    # The size is an EBML variable-length integer: the leading 1 bit gives its length.
    length = next((n for n in range(1, 9) if first & (0x80 >> (n - 1))), 0)
    if length == 0 or at + 2 + length > len(head):
        return None
    size = first & (0xFF >> length)
    for byte in head[at + 3 : at + 2 + length]:
        size = (size << 8) | byte
    start = at + 2 + length
    return head[start : start + size].rstrip(b"\x00")


def _ebml(head: bytes) -> Sniffed | None:
    if not head.startswith(_EBML_MAGIC):
        return None
    return _DOCTYPES.get(_ebml_doctype(head) or b"matroska", _MKV)


# --------------------------------------------------------------------------------------------------
# MPEG transport streams have no header, only a 0x47 sync byte at the start of every packet:
# 188 bytes apart in broadcast TS, 192 in the M2TS of Blu-ray and AVCHD cameras (a 4-byte
# timestamp first). Three packets in a row make a chance match on other data negligible.

_TS_LAYOUTS: tuple[tuple[int, int, Sniffed], ...] = (
    (188, 0, _video("video/mp2t", "MPEG-TS")),
    (192, 4, _video("video/mp2t", "M2TS")),
)
_TS_MIN_PACKETS = 3


def _transport_stream(head: bytes) -> Sniffed | None:
    for packet, offset, kind in _TS_LAYOUTS:
        syncs = range(offset, len(head), packet)
        if len(syncs) >= _TS_MIN_PACKETS and all(head[i] == 0x47 for i in syncs):
            return kind
    return None


# --------------------------------------------------------------------------------------------------

_MATCHERS: tuple[Callable[[bytes], Sniffed | None], ...] = (
    _magic,
    _bmp,
    _riff,
    _iso_bmff,
    _ebml,
    _transport_stream,
)


def sniff_bytes(head: bytes) -> Sniffed:
    """The kind of a file whose first bytes are ``head`` (pass :data:`HEAD_SIZE` bytes or more).

    Unknown, empty or too short input is ``Sniffed("other", None, None)``.
    """
    for matcher in _MATCHERS:
        found = matcher(head)
        if found is not None:
            return found
    return _OTHER


def sniff_file(path: Path | str) -> Sniffed:
    """The kind of the file at ``path`` from its first :data:`HEAD_SIZE` bytes (never its name).

    A zero-byte file is ``"other"``. ``OSError`` (missing file, no permission) propagates: the
    caller records why the file could not be read.
    """
    with open(path, "rb") as fh:
        head = fh.read(HEAD_SIZE)
    return sniff_bytes(head)

"""Media type from the bytes: real files written by Pillow and hand-made container headers."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, features

from landscape.index.sniff import HEAD_SIZE, Sniffed, sniff_bytes, sniff_file


def _photo(size: tuple[int, int] = (64, 48)) -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))


def _encoded(fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    _photo().save(buf, fmt, **params)
    return buf.getvalue()


def _box(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", 8 + len(body)) + kind + body


def _ftyp(major: bytes, *compatible: bytes) -> bytes:
    return _box(b"ftyp", major + b"\x00\x00\x02\x00" + b"".join(compatible))


def _ebml_header(doctype: bytes | None) -> bytes:
    """An EBML header as mkvmerge and browsers write it, optionally with a DocType element."""
    body = b"\x42\x86\x81\x01" + b"\x42\xf7\x81\x01" + b"\x42\xf2\x81\x04" + b"\x42\xf3\x81\x08"
    if doctype is not None:
        body += b"\x42\x82" + bytes([0x80 | len(doctype)]) + doctype
    body += b"\x42\x87\x81\x04" + b"\x42\x85\x81\x02"
    return b"\x1a\x45\xdf\xa3" + bytes([0x80 | len(body)]) + body + b"\x18\x53\x80\x67"


@pytest.mark.parametrize(
    ("fmt", "params", "mime", "name"),
    [
        ("JPEG", {"quality": 90}, "image/jpeg", "JPEG"),
        ("PNG", {}, "image/png", "PNG"),
        ("GIF", {}, "image/gif", "GIF"),
        ("BMP", {}, "image/bmp", "BMP"),
        ("TIFF", {}, "image/tiff", "TIFF"),
        ("WEBP", {"quality": 80}, "image/webp", "WebP"),
    ],
)
def test_images_written_by_pillow(tmp_path: Path, fmt: str, params: dict, mime: str, name: str):
    path = tmp_path / f"picture.{fmt.lower()}"
    path.write_bytes(_encoded(fmt, **params))
    assert sniff_file(path) == Sniffed("image", mime, name)


def test_tiff_in_both_byte_orders():
    little = _encoded("TIFF")
    assert little.startswith(b"II*\x00")
    big = b"MM\x00*" + little[4:]
    assert sniff_bytes(little).format == sniff_bytes(big).format == "TIFF"


@pytest.mark.skipif(not features.check("avif"), reason="Pillow built without AVIF")
def test_avif_written_by_pillow(tmp_path: Path):
    path = tmp_path / "photo.avif"
    path.write_bytes(_encoded("AVIF", quality=50))
    assert sniff_file(path) == Sniffed("image", "image/avif", "AVIF")


def test_the_name_is_never_used(tmp_path: Path):
    png_named_jpg = tmp_path / "holiday.jpg"
    png_named_jpg.write_bytes(_encoded("PNG"))
    text_named_jpg = tmp_path / "notes.jpg"
    text_named_jpg.write_text("this is not an image\n")
    jpeg_without_suffix = tmp_path / "IMG_0001"
    jpeg_without_suffix.write_bytes(_encoded("JPEG"))

    assert sniff_file(png_named_jpg) == Sniffed("image", "image/png", "PNG")
    assert sniff_file(text_named_jpg) == Sniffed("other", None, None)
    assert sniff_file(jpeg_without_suffix).format == "JPEG"


def test_zero_byte_and_tiny_files_are_other(tmp_path: Path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    assert sniff_file(empty) == Sniffed("other", None, None)
    for head in (b"", b"\xff", b"\xff\xd8", b"RIFF", b"BM", b"\x00\x00\x00\x18ftyp"):
        assert sniff_bytes(head).media_type == "other", head


def test_a_missing_file_raises_oserror(tmp_path: Path):
    with pytest.raises(FileNotFoundError):
        sniff_file(tmp_path / "gone.jpg")


def test_only_the_head_is_read(tmp_path: Path):
    # A JPEG signature after HEAD_SIZE bytes of text is not seen: the file is not a JPEG.
    path = tmp_path / "late.bin"
    path.write_bytes(b"x" * HEAD_SIZE + _encoded("JPEG"))
    assert sniff_file(path).media_type == "other"


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (_ftyp(b"isom", b"isom", b"iso2", b"avc1", b"mp41"), Sniffed("video", "video/mp4", "MP4")),
        (_ftyp(b"mp42", b"mp42", b"isom"), Sniffed("video", "video/mp4", "MP4")),
        (_ftyp(b"qt  ", b"qt  "), Sniffed("video", "video/quicktime", "MOV")),
        (_ftyp(b"M4V ", b"M4V ", b"M4A ", b"mp42"), Sniffed("video", "video/x-m4v", "M4V")),
        (_ftyp(b"3gp4", b"isom"), Sniffed("video", "video/3gpp", "3GP")),
        (_ftyp(b"heic", b"mif1", b"heic"), Sniffed("image", "image/heic", "HEIC")),
        (_ftyp(b"heix", b"mif1"), Sniffed("image", "image/heic", "HEIC")),
        # Generic major brand, specific compatible brand: the specific one decides.
        (_ftyp(b"mif1", b"mif1", b"heic"), Sniffed("image", "image/heic", "HEIC")),
        (_ftyp(b"mif1", b"mif1", b"iso8"), Sniffed("image", "image/heif", "HEIF")),
        (_ftyp(b"msf1", b"iso8"), Sniffed("image", "image/heif", "HEIF")),
        (_ftyp(b"avif", b"mif1", b"miaf"), Sniffed("image", "image/avif", "AVIF")),
        # Audio and raw photos list generic MP4 brands too; they are not videos.
        (_ftyp(b"M4A ", b"M4A ", b"mp42", b"isom"), Sniffed("other", None, None)),
        (_ftyp(b"crx ", b"crx ", b"isom"), Sniffed("other", None, None)),
        (_ftyp(b"jp2 ", b"jp2 "), Sniffed("other", None, None)),
        (_box(b"moov", b"\x00" * 16), Sniffed("video", "video/quicktime", "MOV")),
        (_box(b"mdat", b"\x00" * 16), Sniffed("video", "video/quicktime", "MOV")),
        (
            _box(b"wide", b"") + _box(b"mdat", b"\x00" * 8),
            Sniffed("video", "video/quicktime", "MOV"),
        ),
    ],
)
def test_iso_base_media_brands(head: bytes, expected: Sniffed):
    assert sniff_bytes(head + b"\x00" * 64) == expected


def test_a_hand_made_mp4_file(tmp_path: Path):
    path = tmp_path / "clip.jpg"  # the wrong name on purpose
    path.write_bytes(_ftyp(b"isom", b"isom", b"iso2", b"avc1", b"mp41") + _box(b"free", b""))
    assert sniff_file(path) == Sniffed("video", "video/mp4", "MP4")


@pytest.mark.parametrize(
    ("doctype", "expected"),
    [
        (b"webm", Sniffed("video", "video/webm", "WebM")),
        (b"matroska", Sniffed("video", "video/x-matroska", "MKV")),
        (None, Sniffed("video", "video/x-matroska", "MKV")),  # the specification's default
    ],
)
def test_matroska_and_webm_by_doctype(tmp_path: Path, doctype: bytes | None, expected: Sniffed):
    path = tmp_path / "clip.bin"
    path.write_bytes(_ebml_header(doctype) + b"\x00" * 32)
    assert sniff_file(path) == expected


def test_riff_form_types():
    def riff(form: bytes) -> bytes:
        return b"RIFF" + struct.pack("<I", 1000) + form + b"LIST" + b"\x00" * 20

    assert sniff_bytes(riff(b"AVI ")) == Sniffed("video", "video/x-msvideo", "AVI")
    assert sniff_bytes(riff(b"WEBP")) == Sniffed("image", "image/webp", "WebP")
    assert sniff_bytes(riff(b"WAVE")) == Sniffed("other", None, None)


def _ts_packets(n: int, size: int = 188, prefix: int = 0) -> bytes:
    packet = b"\x00" * prefix + b"\x47\x40\x00\x10" + b"\xff" * (size - prefix - 4)
    return packet * n


def test_mpeg_transport_streams():
    assert sniff_bytes(_ts_packets(30)) == Sniffed("video", "video/mp2t", "MPEG-TS")
    assert sniff_bytes(_ts_packets(30, 192, 4)) == Sniffed("video", "video/mp2t", "M2TS")
    # One sync byte is not enough, and a missing sync breaks the pattern.
    assert sniff_bytes(_ts_packets(1)).media_type == "other"
    broken = bytearray(_ts_packets(30))
    broken[188 * 7] = 0x00
    assert sniff_bytes(bytes(broken)).media_type == "other"


def test_mpeg_program_stream():
    pack = b"\x00\x00\x01\xba\x44\x00\x04\x00\x04\x01\x01\x89\xc3\xf8"
    assert sniff_bytes(pack + b"\x00" * 100) == Sniffed("video", "video/mpeg", "MPEG-PS")


def test_bm_text_is_not_a_bitmap():
    assert sniff_bytes(b"BM is the start of this sentence, not of a bitmap").media_type == "other"
    assert sniff_bytes(_encoded("BMP")).format == "BMP"

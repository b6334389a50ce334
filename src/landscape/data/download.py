"""Download a dataset archive (zip, tar, tar.gz/bz2/xz), verify it, extract it safely, describe it.

- Streamed in chunks to ``OUT/.partial/<name>.part``; a later run resumes with an HTTP ``Range``
  request, and starts over when the server ignores it (a ``200`` instead of a ``206``).
- ``sha256`` verified after the download; a mismatch deletes the file and names both digests.
- Extraction refuses the whole archive, before writing anything, when any member would land
  outside ``OUT`` (``..``, absolute paths, existing symlinks) or is a link, device or fifo.
- The extracted folder is indexed with :func:`~landscape.data.datasets.load_dataset` so the
  caller learns the layout, classes and counts at once.

``source`` may also be a local archive path or a ``file://`` URL (nothing is downloaded then).
Only the standard library is used for HTTP: a dataset download needs nothing more.
"""

from __future__ import annotations

import contextlib
import http.client
import re
import shutil
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any
from urllib.error import HTTPError, URLError
from urllib.parse import unquote, urlparse
from urllib.request import Request, url2pathname, urlopen

from landscape.errors import DatasetError, DownloadError

from .datasets import SPLITS, _split_name, load_dataset
from .io import file_sha256, is_image_path

__all__ = [
    "CHUNK_SIZE",
    "DownloadResult",
    "ProgressFn",
    "check_archive",
    "download_dataset",
    "download_file",
    "extract_archive",
    "find_dataset_root",
]

#: Bytes per read/write while streaming; big enough for speed, small enough for a smooth bar.
CHUNK_SIZE = 1 << 16
#: ``progress(stage, done, total)``: stage ``"download"`` counts bytes, ``"extract"`` members;
#: ``total`` is ``None`` when the server sends no length.
ProgressFn = Callable[[str, int, int | None], None]

_PARTIAL = ".partial"
_KEPT = ".downloads"
_BY_HAND = "download it by hand (browser, curl) and pass the local archive path instead of the URL"
# Resource-fork folders macOS adds to zips: not data, and an extra top-level folder would hide
# the dataset's own top folder from find_dataset_root.
_JUNK_TOP = {"__MACOSX"}


@dataclass
class DownloadResult:
    """What :func:`download_dataset` fetched, where it put it and what dataset it found."""

    source: str
    out: Path
    archive: Path | None  # the archive kept on disk, if any (the local source or --keep-archive)
    sha256: str
    size: int
    downloaded: bool  # False for a local archive or an already complete download
    resumed: bool
    extracted: int  # files written
    dataset_root: Path | None = None
    layout: str | None = None
    classes: list[str] = field(default_factory=list)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    problem: str | None = None  # why no dataset was recognised in the extracted files

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict with stable keys."""
        return {
            "source": self.source,
            "out": str(self.out),
            "archive": str(self.archive) if self.archive is not None else None,
            "sha256": self.sha256,
            "bytes": self.size,
            "downloaded": self.downloaded,
            "resumed": self.resumed,
            "extracted": self.extracted,
            "dataset_root": str(self.dataset_root) if self.dataset_root is not None else None,
            "layout": self.layout,
            "classes": list(self.classes),
            "counts": self.counts,
            "problem": self.problem,
        }


# --------------------------------------------------------------------------------------------
# Sources and names


def _normalise_sha256(value: str | None) -> str | None:
    if value is None:
        return None
    digest = value.strip().lower().removeprefix("sha256:")
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise DownloadError(
            f"--sha256 {value!r} is not a sha256 digest",
            fix="pass the 64 hexadecimal digits published with the dataset",
        )
    return digest


def _local_path(source: str) -> Path | None:
    """The local file ``source`` names, or ``None`` for an http(s) URL."""
    parsed = urlparse(source)
    scheme = parsed.scheme.lower()
    if scheme in ("http", "https"):
        return None
    if scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise DownloadError(
                f"file URL {source!r} names another host", fix="use file:///absolute/path"
            )
        return Path(url2pathname(unquote(parsed.path)))
    if scheme and len(scheme) > 1:  # one letter is a Windows drive, not a scheme
        raise DownloadError(
            f"unsupported URL scheme {scheme!r} in {source!r}",
            fix="use an http(s):// or file:// URL or a local archive path",
        )
    return Path(source).expanduser()


def _archive_name(url: str) -> str:
    name = unquote(PurePosixPath(urlparse(url).path).name)
    # The name only labels the partial file; the archive type is read from its content.
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")
    return safe or "download"


# --------------------------------------------------------------------------------------------
# HTTP


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """``(start, total)`` of a ``Content-Range: bytes a-b/n`` or ``bytes */n`` header."""
    if not value:
        return None, None
    match = re.fullmatch(r"\s*bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)\s*", value)
    if not match:
        return None, None
    start = int(match.group(1)) if match.group(1) is not None else None
    total = int(match.group(2)) if match.group(2) != "*" else None
    return start, total


def _open(url: str, offset: int, timeout: float) -> Any:
    from landscape import __version__

    headers = {"User-Agent": f"landscape/{__version__} (+dataset download)"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    return urlopen(Request(url, headers=headers), timeout=timeout)


def _unreachable(url: str, exc: BaseException) -> DownloadError:
    reason = getattr(exc, "reason", None) or exc
    return DownloadError(f"cannot download {url} ({reason})", fix=_BY_HAND)


def download_file(
    url: str,
    part: Path,
    *,
    progress: ProgressFn | None = None,
    timeout: float = 30.0,
) -> bool:
    """Stream ``url`` into ``part``, resuming from its current size; True when it resumed.

    A server that ignores ``Range`` (answers 200) makes the download start over; ``416`` on a
    part that already holds the whole file counts as complete. A dropped connection keeps the
    part and raises :class:`DownloadError` asking to run again (which resumes).
    """
    part.parent.mkdir(parents=True, exist_ok=True)
    offset = part.stat().st_size if part.exists() else 0
    try:
        response = _open(url, offset, timeout)
    except HTTPError as exc:
        if exc.code == 416 and offset:
            _, total = _content_range(exc.headers.get("Content-Range"))
            if total == offset:
                return True  # the previous run got every byte but stopped before renaming
            part.unlink()  # the part is longer than the file now is: start over
            return download_file(url, part, progress=progress, timeout=timeout)
        raise DownloadError(
            f"cannot download {url} (HTTP {exc.code} {exc.reason})", fix=_BY_HAND
        ) from exc
    except (URLError, OSError, ValueError, http.client.HTTPException) as exc:
        raise _unreachable(url, exc) from exc

    with response:
        start, _ = _content_range(response.headers.get("Content-Range"))
        if response.status == 206 and start != offset:
            # A range we did not ask for: appending it would corrupt the file. Start over.
            response.close()
            part.unlink(missing_ok=True)
            if offset:
                return download_file(url, part, progress=progress, timeout=timeout)
            raise DownloadError(
                f"cannot download {url} (the server sent part of the file unasked)",
                fix=_BY_HAND,
            )
        resumed = bool(offset) and response.status == 206
        if not resumed:
            offset = 0  # the server ignored Range (answered 200): start over
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length and length.isdigit() else None
        done = offset
        if progress is not None:
            progress("download", done, total)
        with open(part, "ab" if resumed else "wb") as fh:
            try:
                while chunk := response.read(CHUNK_SIZE):
                    fh.write(chunk)
                    done += len(chunk)
                    if progress is not None:
                        progress("download", done, total)
            except (OSError, http.client.HTTPException) as exc:
                raise DownloadError(
                    f"download of {url} stopped after {done:,} bytes ({exc or type(exc).__name__})",
                    fix="run the same command again to resume",
                ) from exc
    if total is not None and done < total:
        raise DownloadError(
            f"download of {url} stopped after {done:,} of {total:,} bytes",
            fix="run the same command again to resume",
        )
    return resumed


# --------------------------------------------------------------------------------------------
# Archives


@dataclass(frozen=True)
class _Member:
    name: str  # normalised relative posix path
    is_dir: bool
    size: int
    info: Any  # the archive's own ZipInfo / TarInfo, to read the data from


class _BadArchive(DownloadError):
    """The archive itself is unusable (unsafe, corrupt, not an archive): a download is discarded.

    Other extraction errors (disk full) keep the downloaded archive for the next try.
    """


def _kind(archive: Path) -> str:
    if zipfile.is_zipfile(archive):
        return "zip"
    if tarfile.is_tarfile(archive):
        return "tar"
    with open(archive, "rb") as fh:
        head = fh.read(512).lstrip().lower()
    hint = ""
    if head.startswith((b"<!doctype html", b"<html")):
        hint = " (it is an HTML page: a login or consent page instead of the file?)"
    raise _BadArchive(
        f"is not a zip or tar archive{hint}",
        path=archive,
        fix="check the URL, or " + _BY_HAND,
    )


def _unsafe(archive: Path, name: str, why: str) -> DownloadError:
    return _BadArchive(
        f"refusing to extract: member {name!r} {why}; nothing was extracted",
        path=archive,
        fix="use an archive from a trusted source",
    )


def _relative_name(archive: Path, name: str) -> str:
    """``name`` as a clean relative posix path, or :class:`DownloadError` when it could escape."""
    text = name.replace("\\", "/")  # zips made on Windows may use backslashes
    if "\x00" in text:
        raise _unsafe(archive, name, "has a NUL byte in its name")
    if text.startswith("/") or re.match(r"^[A-Za-z]:", text):
        raise _unsafe(archive, name, "has an absolute path")
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise _unsafe(archive, name, "has '..' in its path")
    return "/".join(parts)


def _tar_members(archive: Path, tar: tarfile.TarFile) -> list[_Member]:
    members = []
    for info in tar.getmembers():
        name = _relative_name(archive, info.name)
        if info.issym() or info.islnk():
            raise _unsafe(archive, info.name, f"is a link (to {info.linkname!r})")
        if info.ischr() or info.isblk() or info.isfifo():
            raise _unsafe(archive, info.name, "is a device or fifo")
        if not (info.isfile() or info.isdir()):
            raise _unsafe(archive, info.name, "is not a regular file or folder")
        members.append(_Member(name, info.isdir(), info.size, info))
    return members


def _zip_members(archive: Path, zf: zipfile.ZipFile) -> list[_Member]:
    members = []
    for info in zf.infolist():
        name = _relative_name(archive, info.filename)
        # Unix zips keep st_mode in the high 16 bits; many writers leave the type bits at 0.
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise _unsafe(archive, info.filename, "is a symbolic link")
        if stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise _unsafe(archive, info.filename, "is a device or fifo")
        if info.flag_bits & 0x1:
            raise DownloadError(
                f"member {info.filename!r} is encrypted", path=archive, fix="extract it by hand"
            )
        members.append(_Member(name, info.is_dir(), info.file_size, info))
    return members


@contextmanager
def _opened(archive: Path) -> Iterator[tuple[str, Any]]:
    kind = _kind(archive)
    try:
        if kind == "zip":
            with zipfile.ZipFile(archive) as zf:
                yield kind, zf
        else:
            with tarfile.open(archive, "r:*") as tar:
                yield kind, tar
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        # Write errors are DownloadErrors already (see _copy); these come from reading.
        raise _BadArchive(
            f"archive is corrupt or truncated ({exc})",
            path=archive,
            fix="delete it and download it again",
        ) from exc


def _confined(out: Path, name: str, archive: Path) -> Path:
    """Where ``name`` goes under ``out``; refuses a path that resolves outside (via symlinks)."""
    target = out.joinpath(*name.split("/")) if name else out
    base = out.resolve()
    if not target.resolve().is_relative_to(base):
        raise _unsafe(archive, name, f"would be written outside {out}")
    return target


def check_archive(archive: Path, out: Path) -> list[str]:
    """Names of the files in ``archive``; :class:`DownloadError` when any member is unsafe.

    Unsafe: a path with ``..``, an absolute path, a path that resolves outside ``out`` through a
    symlink already there, a symbolic or hard link, a device or a fifo. Nothing is written.
    """
    with _opened(archive) as (kind, handle):
        members = _zip_members(archive, handle) if kind == "zip" else _tar_members(archive, handle)
    for member in members:
        _confined(out, member.name, archive)
    return [m.name for m in members if not m.is_dir]


def extract_archive(archive: Path, out: Path, *, progress: ProgressFn | None = None) -> list[Path]:
    """Check every member of ``archive`` (see :func:`check_archive`), then extract into ``out``.

    Only regular files and folders are written, through ``open(..., "wb")``: permissions, owners
    and timestamps from the archive are not applied. Returns the files written.
    """
    with _opened(archive) as (kind, handle):
        members = _zip_members(archive, handle) if kind == "zip" else _tar_members(archive, handle)
        targets = [_confined(out, m.name, archive) for m in members]
        needed = sum(m.size for m in members)
        try:
            out.mkdir(parents=True, exist_ok=True)
            free = shutil.disk_usage(out).free
        except OSError as exc:
            raise _write_error(out, exc) from exc
        if needed > free:
            raise DownloadError(
                f"archive expands to {needed / 1e9:.1f} GB but only {free / 1e9:.1f} GB are free",
                path=out,
                fix="free some space or choose another OUT folder",
            )
        written: list[Path] = []
        wanted = [
            (m, t)
            for m, t in zip(members, targets, strict=True)
            if m.name and m.name.split("/", 1)[0] not in _JUNK_TOP
        ]
        files = [(m, t) for m, t in wanted if not m.is_dir]
        for done, (member, target) in enumerate(files, start=1):
            source: IO[bytes] | None = (
                handle.open(member.info) if kind == "zip" else handle.extractfile(member.info)
            )
            if source is None:  # pragma: no cover - only links have no data, and they are refused
                continue
            with source:
                _copy(source, target)
            written.append(target)
            if progress is not None:
                progress("extract", done, len(files))
        for member, target in wanted:
            if member.is_dir:
                target.mkdir(parents=True, exist_ok=True)
    return written


def _copy(source: IO[bytes], target: Path) -> None:
    """Stream one member to ``target``; disk errors become a DownloadError naming the file."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        # Opened apart from the `with` so its errors are told apart from the archive's.
        dest = open(target, "wb")  # noqa: SIM115
    except OSError as exc:
        raise _write_error(target, exc) from exc
    with dest:
        while chunk := source.read(CHUNK_SIZE):  # read errors: a corrupt archive (see _opened)
            try:
                dest.write(chunk)
            except OSError as exc:
                raise _write_error(target, exc) from exc


def _write_error(target: Path, exc: OSError) -> DownloadError:
    return DownloadError(
        f"cannot write ({exc.strerror or exc})",
        path=target,
        fix="check the free space and permissions of the OUT folder",
    )


# --------------------------------------------------------------------------------------------
# Dataset


def find_dataset_root(out: Path) -> Path:
    """The folder under ``out`` that holds the dataset: step into single wrapper folders.

    Archives usually wrap everything in one top folder (``Landscape Classification/``); split
    folders (``train``, ``Training Data``, ``seg_train``) or image files stop the descent.
    """
    current = out
    for _ in range(5):
        entries = [c for c in current.iterdir() if not c.name.startswith(".")]
        folders = [c for c in entries if c.is_dir() and c.name not in _JUNK_TOP]
        if any(_split_name(c) in SPLITS for c in folders):
            return current
        if any(c.is_file() and (is_image_path(c) or c.suffix.lower() == ".csv") for c in entries):
            return current
        if len(folders) != 1:
            return current
        only = folders[0]
        # A single folder of images is one class, not a wrapper: stop above it.
        if not any(c.is_dir() for c in only.iterdir()):
            return current
        current = only
    return current


def _describe(result: DownloadResult) -> None:
    root = find_dataset_root(result.out)
    try:
        index = load_dataset(root)
    except DatasetError as exc:
        result.problem = str(exc)
        return
    result.dataset_root = root
    result.layout = index.layout
    result.classes = list(index.classes)
    counts = index.counts()
    order = [*SPLITS, "all"]  # train/val/test, not the order the samples happen to sort in
    result.counts = {k: counts[k] for k in sorted(counts, key=order.index)}


def download_dataset(
    source: str,
    out: Path,
    *,
    sha256: str | None = None,
    progress: ProgressFn | None = None,
    keep_archive: bool = False,
    timeout: float = 30.0,
) -> DownloadResult:
    """Fetch ``source`` (http(s) URL, ``file://`` URL or local path), verify, extract into ``out``.

    The download goes to ``out/.partial/<name>.part`` and resumes on a later call. A complete
    download moves to ``out/.downloads/<name>`` (reused by a later call when its sha256 fits)
    and is deleted after extraction unless ``keep_archive``; an unsafe or corrupt one at once.
    Raises :class:`DownloadError` (one line, with the fix) on a network or HTTP error, a checksum
    mismatch or an unsafe or corrupt archive.
    """
    expected = _normalise_sha256(sha256)
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise DownloadError("exists and is not a folder", path=out, fix="choose another OUT")
    local = _local_path(source)
    downloaded = resumed = False
    if local is not None:
        if not local.is_file():
            raise DownloadError("does not exist", path=local, fix="check the archive path")
        archive = local
        actual = file_sha256(archive)
        if expected and actual != expected:
            raise DownloadError(
                f"checksum mismatch: expected sha256 {expected}, got {actual}",
                path=archive,
                fix="check the --sha256 value or get the archive again",
            )
    else:
        name = _archive_name(source)
        kept = out / _KEPT / name
        previous = file_sha256(kept) if kept.is_file() else None
        if previous is not None and expected in (None, previous):
            # A complete archive from an earlier run (--keep-archive, or extraction failed).
            archive, actual = kept, previous
        else:
            part = out / _PARTIAL / f"{name}.part"
            resumed = download_file(source, part, progress=progress, timeout=timeout)
            downloaded = True
            actual = file_sha256(part)
            if expected and actual != expected:
                part.unlink()
                raise DownloadError(
                    f"checksum mismatch for {source}: expected sha256 {expected}, got {actual}",
                    fix="the download was deleted; check the --sha256 value and the URL",
                )
            kept.parent.mkdir(parents=True, exist_ok=True)
            part.replace(kept)
            _remove_empty(out / _PARTIAL)
            archive = kept

    try:
        written = extract_archive(archive, out, progress=progress)
    except _BadArchive:
        if archive != local:
            archive.unlink(missing_ok=True)  # never keep a refused or corrupt download
            _remove_empty(out / _KEPT)
        raise
    # Any other error (disk full) leaves the download in OUT/.downloads for the next run.
    size = archive.stat().st_size
    keep = archive == local or keep_archive
    if not keep:
        archive.unlink()
        _remove_empty(out / _KEPT)
    result = DownloadResult(
        source=source,
        out=out,
        archive=archive if keep else None,
        sha256=actual,
        size=size,
        downloaded=downloaded,
        resumed=resumed,
        extracted=len(written),
    )
    _describe(result)
    return result


def _remove_empty(folder: Path) -> None:
    with contextlib.suppress(OSError):  # absent or not empty: both fine
        folder.rmdir()

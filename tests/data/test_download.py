"""Tests of :mod:`landscape.data.download` against a local HTTP server serving test archives."""

from __future__ import annotations

import hashlib
import io
import json
import re
import socket
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from landscape.data.download import check_archive, download_dataset
from landscape.errors import DownloadError

# --------------------------------------------------------------------------------------------
# Archives


def _jpeg(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def _dataset_files(prefix: str) -> dict[str, bytes]:
    """A tiny class-folder dataset: 2 classes x 3 real JPEGs under ``prefix``."""
    return {
        f"{prefix}{cls}/{i}.jpg": _jpeg(seed)
        for seed, (cls, i) in enumerate((c, i) for c in ("forest", "sea") for i in range(3))
    }


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def _tar(members: list[tuple[tarfile.TarInfo, bytes | None]], mode: str = "w:gz") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as tar:  # type: ignore[call-overload]
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def _tar_files(files: dict[str, bytes]) -> bytes:
    return _tar([(tarfile.TarInfo(name), data) for name, data in files.items()])


ZIP_BYTES = _zip(_dataset_files("tiny/"))
# Kaggle-style split folders inside a wrapper folder.
TAR_FILES = {
    **{k.replace("x/", "Landscape/Training Data/"): v for k, v in _dataset_files("x/").items()},
    **{k.replace("x/", "Landscape/Testing Data/"): v for k, v in _dataset_files("x/").items()},
}
TAR_BYTES = _tar_files(TAR_FILES)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------------------------
# Server


@dataclass
class Server:
    """Files served at ``/<name>``; knobs for Range support and a connection cut short."""

    base: str
    files: dict[str, bytes] = field(default_factory=dict)
    honour_range: bool = True
    cut_next_after: int | None = None  # send only this many bytes of the next response
    requests: list[dict[str, str]] = field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer

    def log_message(self, format: str, *args: object) -> None:  # silence the test log
        pass

    def do_GET(self) -> None:
        state = self.server.state
        state.requests.append({"path": self.path, **dict(self.headers.items())})
        data = state.files.get(self.path.lstrip("/"))
        if data is None:
            self.send_error(404, "Not Found")
            return
        status, body, extra = 200, data, {}
        wanted = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
        if wanted and state.honour_range:
            start = int(wanted.group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status, body = 206, data[start:]
            extra = {"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"}
        self.send_response(status)
        ctype = "text/html" if body.startswith(b"<!DOCTYPE") else "application/octet-stream"
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for key, value in extra.items():
            self.send_header(key, value)
        self.end_headers()
        if state.cut_next_after is not None:
            body, state.cut_next_after = body[: state.cut_next_after], None
            self.close_connection = True
        self.wfile.write(body)


class _HTTPServer(ThreadingHTTPServer):
    state: Server


@pytest.fixture
def server() -> Iterator[Server]:
    httpd = _HTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    host, port = httpd.server_address[:2]
    httpd.state = Server(base=f"http://{host!s}:{port}")
    httpd.state.files = {"tiny.zip": ZIP_BYTES, "landscape.tar.gz": TAR_BYTES}
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield httpd.state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def _files_under(folder: Path) -> list[str]:
    if not folder.exists():
        return []
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


# --------------------------------------------------------------------------------------------
# Downloads


def test_zip_is_downloaded_extracted_and_its_layout_detected(
    server: Server, tmp_path: Path
) -> None:
    out = tmp_path / "data"
    events: list[tuple[str, int, int | None]] = []
    result = download_dataset(f"{server.base}/tiny.zip", out, progress=lambda *e: events.append(e))
    assert result.downloaded and not result.resumed
    assert result.sha256 == _sha(ZIP_BYTES) and result.size == len(ZIP_BYTES)
    assert result.extracted == 6
    assert result.dataset_root == out / "tiny"
    assert result.layout == "folders"
    assert result.classes == ["forest", "sea"]
    assert result.counts == {"all": {"forest": 3, "sea": 3}}
    assert result.archive is None  # deleted after extraction; no leftovers
    assert _files_under(out) == sorted(
        f"tiny/{c}/{i}.jpg" for c in ("forest", "sea") for i in range(3)
    )
    assert (out / "tiny" / "sea" / "2.jpg").read_bytes() == _dataset_files("tiny/")[
        "tiny/sea/2.jpg"
    ]
    downloads = [e for e in events if e[0] == "download"]
    assert downloads[-1] == ("download", len(ZIP_BYTES), len(ZIP_BYTES))
    assert [e for e in events if e[0] == "extract"][-1] == ("extract", 6, 6)
    assert "Range" not in server.requests[0]


def test_tar_gz_with_split_folders_and_a_correct_checksum(server: Server, tmp_path: Path) -> None:
    out = tmp_path / "data"
    result = download_dataset(
        f"{server.base}/landscape.tar.gz", out, sha256=_sha(TAR_BYTES).upper(), keep_archive=True
    )
    assert result.layout == "splits"
    assert result.dataset_root == out / "Landscape"
    assert result.counts == {"train": {"forest": 3, "sea": 3}, "test": {"forest": 3, "sea": 3}}
    assert result.archive == out / ".downloads" / "landscape.tar.gz"
    assert result.archive.read_bytes() == TAR_BYTES
    # A second run with the same checksum reuses the kept archive instead of downloading.
    again = download_dataset(f"{server.base}/landscape.tar.gz", out, sha256=_sha(TAR_BYTES))
    assert not again.downloaded and len(server.requests) == 1
    assert again.layout == "splits"


def test_checksum_mismatch_deletes_the_download_and_names_both_digests(
    server: Server, tmp_path: Path
) -> None:
    out = tmp_path / "data"
    wrong = "0" * 64
    with pytest.raises(DownloadError) as caught:
        download_dataset(f"{server.base}/tiny.zip", out, sha256=wrong)
    message = str(caught.value)
    assert wrong in message and _sha(ZIP_BYTES) in message
    assert _files_under(out) == []  # neither the bad archive nor any extracted file


def test_invalid_checksum_value_is_refused_before_downloading(
    server: Server, tmp_path: Path
) -> None:
    with pytest.raises(DownloadError, match="not a sha256 digest"):
        download_dataset(f"{server.base}/tiny.zip", tmp_path / "d", sha256="abc")
    assert server.requests == []


def test_partial_download_is_resumed_with_a_range_request(server: Server, tmp_path: Path) -> None:
    out = tmp_path / "data"
    half = len(ZIP_BYTES) // 2
    part = out / ".partial" / "tiny.zip.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(ZIP_BYTES[:half])

    result = download_dataset(f"{server.base}/tiny.zip", out, sha256=_sha(ZIP_BYTES))
    assert result.resumed
    assert server.requests[0]["Range"] == f"bytes={half}-"
    assert result.sha256 == _sha(ZIP_BYTES)
    assert result.layout == "folders" and result.extracted == 6
    assert not part.exists()


def test_server_ignoring_range_makes_the_download_start_over(
    server: Server, tmp_path: Path
) -> None:
    server.honour_range = False
    out = tmp_path / "data"
    part = out / ".partial" / "tiny.zip.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"stale bytes from another file")

    result = download_dataset(f"{server.base}/tiny.zip", out, sha256=_sha(ZIP_BYTES))
    assert "Range" in server.requests[0]  # asked to resume...
    assert not result.resumed  # ...got a 200 and started over instead of appending
    assert result.extracted == 6


def test_interrupted_download_keeps_the_part_and_resumes_next_time(
    server: Server, tmp_path: Path
) -> None:
    out = tmp_path / "data"
    server.cut_next_after = 1000
    with pytest.raises(DownloadError, match="run the same command again to resume"):
        download_dataset(f"{server.base}/landscape.tar.gz", out)
    part = out / ".partial" / "landscape.tar.gz.part"
    assert part.read_bytes() == TAR_BYTES[:1000]

    result = download_dataset(f"{server.base}/landscape.tar.gz", out, sha256=_sha(TAR_BYTES))
    assert result.resumed and server.requests[-1]["Range"] == "bytes=1000-"
    assert result.layout == "splits"


def test_complete_part_answered_with_416_counts_as_done(server: Server, tmp_path: Path) -> None:
    out = tmp_path / "data"
    part = out / ".partial" / "tiny.zip.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(ZIP_BYTES)
    result = download_dataset(f"{server.base}/tiny.zip", out, sha256=_sha(ZIP_BYTES))
    assert result.resumed and result.extracted == 6


def test_part_longer_than_the_file_starts_over(server: Server, tmp_path: Path) -> None:
    out = tmp_path / "data"
    part = out / ".partial" / "tiny.zip.part"
    part.parent.mkdir(parents=True)
    stale = ZIP_BYTES + b"junk from a bigger, older version"
    part.write_bytes(stale)
    result = download_dataset(f"{server.base}/tiny.zip", out)
    # 416 (range beyond the end) for the stale part, then a plain request from byte 0.
    assert [r.get("Range") for r in server.requests] == [f"bytes={len(stale)}-", None]
    assert not result.resumed and result.sha256 == _sha(ZIP_BYTES)


def test_corrupt_archive_is_reported_and_discarded(server: Server, tmp_path: Path) -> None:
    server.files["cut.tar.gz"] = TAR_BYTES[: len(TAR_BYTES) // 2]
    out = tmp_path / "data"
    with pytest.raises(DownloadError, match="corrupt or truncated"):
        download_dataset(f"{server.base}/cut.tar.gz", out)
    assert _files_under(out) == []


def test_unreachable_url_and_http_errors_are_one_line_download_errors(
    server: Server, tmp_path: Path
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{closed_port}/x.zip"
    with pytest.raises(DownloadError) as caught:
        download_dataset(url, tmp_path / "a", timeout=5)
    message = str(caught.value)
    assert url in message and "by hand" in message and "\n" not in message

    with pytest.raises(DownloadError, match="HTTP 404"):
        download_dataset(f"{server.base}/missing.zip", tmp_path / "b")


def test_html_page_instead_of_an_archive_is_named(server: Server, tmp_path: Path) -> None:
    server.files["login.zip"] = b"<!DOCTYPE html><html><body>Sign in</body></html>"
    with pytest.raises(DownloadError, match="HTML page"):
        download_dataset(f"{server.base}/login.zip", tmp_path / "out")
    assert _files_under(tmp_path / "out") == []


def test_local_archive_path_and_file_url(tmp_path: Path) -> None:
    archive = tmp_path / "tiny.zip"
    archive.write_bytes(ZIP_BYTES)
    by_path = download_dataset(str(archive), tmp_path / "a", sha256=_sha(ZIP_BYTES))
    by_url = download_dataset(archive.as_uri(), tmp_path / "b")
    for result in (by_path, by_url):
        assert not result.downloaded and result.layout == "folders" and result.extracted == 6
        assert result.archive == archive
    assert archive.read_bytes() == ZIP_BYTES  # the user's archive is left alone
    with pytest.raises(DownloadError, match="checksum mismatch"):
        download_dataset(str(archive), tmp_path / "c", sha256="f" * 64)
    assert archive.exists() and not (tmp_path / "c").exists()
    with pytest.raises(DownloadError, match="does not exist"):
        download_dataset(str(tmp_path / "nope.zip"), tmp_path / "d")


# --------------------------------------------------------------------------------------------
# Unsafe archives


def _evil_tars(tmp_path: Path) -> dict[str, bytes]:
    good = (tarfile.TarInfo("fine/ok.txt"), b"harmless")
    link = tarfile.TarInfo("fine/link")
    link.type, link.linkname = tarfile.SYMTYPE, "../../outside.txt"
    hard = tarfile.TarInfo("fine/hard")
    hard.type, hard.linkname = tarfile.LNKTYPE, "/etc/passwd"
    device = tarfile.TarInfo("fine/dev")
    device.type = tarfile.CHRTYPE
    return {
        "dotdot": _tar([good, (tarfile.TarInfo("../evil.txt"), b"escaped")]),
        "absolute": _tar([good, (tarfile.TarInfo(str(tmp_path / "abs_evil.txt")), b"escaped")]),
        "symlink": _tar([good, (link, None)]),
        "hardlink": _tar([good, (hard, None)]),
        "device": _tar([good, (device, None)]),
    }


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink", "hardlink", "device"])
def test_malicious_tar_is_refused_before_anything_is_written(
    server: Server, tmp_path: Path, kind: str
) -> None:
    server.files["evil.tar.gz"] = _evil_tars(tmp_path)[kind]
    out = tmp_path / "deep" / "out"
    with pytest.raises(DownloadError, match="refusing to extract"):
        download_dataset(f"{server.base}/evil.tar.gz", out)
    assert _files_under(out) == []  # not even the harmless member listed before the bad one
    assert not (tmp_path / "deep" / "evil.txt").exists()
    assert not (tmp_path / "abs_evil.txt").exists()
    assert not (tmp_path / "outside.txt").exists()


@pytest.mark.parametrize(
    "name", ["../evil.txt", "a/../../evil.txt", "/abs_evil.txt", "..\\evil.txt"]
)
def test_malicious_zip_is_refused(tmp_path: Path, name: str) -> None:
    archive = tmp_path / "evil.zip"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("fine/ok.txt", b"harmless")
        info = zipfile.ZipInfo("placeholder")
        info.filename = name  # ZipInfo() would normalise a leading slash away
        zf.writestr(info, b"escaped")
    archive.write_bytes(buffer.getvalue())
    out = tmp_path / "deep" / "out"
    with pytest.raises(DownloadError, match="refusing to extract"):
        download_dataset(str(archive), out)
    assert not out.exists()
    assert not (tmp_path / "deep" / "evil.txt").exists() and not (tmp_path / "evil.txt").exists()


def test_zip_symlink_member_and_escape_through_existing_symlink(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        info = zipfile.ZipInfo("link")
        info.external_attr = 0o120777 << 16  # S_IFLNK | 0777
        zf.writestr(info, "/etc/passwd")
    archive = tmp_path / "link.zip"
    archive.write_bytes(buffer.getvalue())
    with pytest.raises(DownloadError, match="symbolic link"):
        check_archive(archive, tmp_path / "out")

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "out2"
    out.mkdir()
    (out / "shortcut").symlink_to(elsewhere)
    archive.write_bytes(_zip({"shortcut/evil.txt": b"escaped"}))
    with pytest.raises(DownloadError, match="outside"):
        download_dataset(str(archive), out)
    assert list(elsewhere.iterdir()) == []


# --------------------------------------------------------------------------------------------
# CLI


def test_cli_download_json_and_errors(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from landscape.cli import main

    out = tmp_path / "data"
    code = main(["data", "download", f"{server.base}/tiny.zip", str(out), "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    data = json.loads(captured.out)
    assert data["layout"] == "folders" and data["classes"] == ["forest", "sea"]
    assert data["counts"] == {"all": {"forest": 3, "sea": 3}}
    assert set(data) >= {"source", "out", "sha256", "bytes", "extracted", "dataset_root"}

    code = main(["data", "download", f"{server.base}/landscape.tar.gz", str(tmp_path / "t")])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "splits" in captured.out and "2 classes" in captured.out

    code = main(
        ["data", "download", f"{server.base}/tiny.zip", str(tmp_path / "x"), "--sha256", "1" * 64]
    )
    captured = capsys.readouterr()
    assert code == 1
    # The finished download bar may precede it; the error itself is one line.
    errors = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "checksum mismatch" in errors[0]
    assert captured.err.rstrip().endswith(errors[0])
    assert "Traceback" not in captured.err

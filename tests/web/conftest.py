"""A small real index for the GUI tests: the synthetic archive (photos, a survey video, odd
files) plus files whose names and EXIF carry HTML payloads, indexed with the scene model; users
with passwords and a token. Each test module gets its own copy of the database."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image

from landscape.api.settings import ServiceSettings

PASSWORD = "correct horse battery"
SCRIPT_DIR = "x<script>alert(1)<"  # with the file's name the path holds <script>alert(1)</script>
SCRIPT_NAME = "script>.jpg"
ATTR_NAME = '"onmouseover="alert(2)".jpg'
EXIF_MAKE = "<img src=x onerror=alert(3)>"


@dataclass(frozen=True)
class WebIndex:
    """Where the golden index lives and what is in it."""

    folder: Path
    root: Path
    token: str
    ids: dict[str, int]


def _write_payload_files(root: Path) -> None:
    source = next(root.rglob("coast_*.jpg"))
    folder = root / SCRIPT_DIR
    folder.mkdir()
    shutil.copy(source, folder / SCRIPT_NAME)
    shutil.copy(next(root.rglob("forest_*.jpg")), root / ATTR_NAME)
    image = Image.open(next(root.rglob("glacier_*.jpg")))
    exif = Image.Exif()
    exif[0x010F] = EXIF_MAKE  # camera make
    exif[0x0110] = "</td><b>bold</b>"  # camera model
    image.save(root / "exif-payload.jpg", exif=exif, quality=90)


@pytest.fixture(scope="session")
def web_index(scene_run: Path, tmp_path_factory: pytest.TempPathFactory) -> WebIndex:
    """The golden index (built once): never used directly, each module copies it."""
    from sqlalchemy import select

    from landscape.data.archive import ArchiveSpec, build_archive
    from landscape.index.accounts import add_user, issue_token
    from landscape.index.db import open_index, session_factory
    from landscape.index.pipeline import IndexOptions, run_index
    from landscape.index.schema import File
    from landscape.inference.predictor import Predictor

    base = tmp_path_factory.mktemp("web")
    root = base / "archive"
    build_archive(root, ArchiveSpec(per_class=2, size=64, seed=3, video=True))
    _write_payload_files(root)
    folder = base / "db"
    folder.mkdir()
    engine = open_index(f"sqlite:///{folder / 'index.db'}")
    try:
        run_index(
            engine,
            [root],
            predictor=Predictor.from_bundle(scene_run / "bundle"),
            options=IndexOptions(workers=1, memory_mb=None),
        )
        with session_factory(engine)() as session:
            add_user(session, "ana", "admin", PASSWORD)
            add_user(session, "walt", "analyst", PASSWORD)
            add_user(session, "vic", "viewer", PASSWORD)
            token, _ = issue_token(session, "ana")
            session.commit()
            ids = {
                Path(rel).name: fid
                for fid, rel in session.execute(select(File.id, File.relative_path)).all()
            }
    finally:
        engine.dispose()
    return WebIndex(folder, root, token, ids)


@dataclass(frozen=True)
class WebCopy:
    """One module's own copy of the index, and settings to serve it."""

    url: str
    home: Path
    index: WebIndex

    def settings(self, **overrides: object) -> ServiceSettings:
        values: dict[str, object] = {
            "db": self.url,
            "home": self.home,
            "secret": "web-tests-signing-key-0123456789",
        }
        values.update(overrides)
        return ServiceSettings(**values)  # type: ignore[arg-type]

    def file_id(self, name: str) -> int:
        return self.index.ids[name]


@pytest.fixture(scope="module")
def web_copy(web_index: WebIndex, tmp_path_factory: pytest.TempPathFactory) -> WebCopy:
    base = tmp_path_factory.mktemp("webcopy")
    folder = shutil.copytree(web_index.folder, base / "db")
    return WebCopy(f"sqlite:///{folder / 'index.db'}", base / "home", web_index)


@pytest.fixture(scope="module")
def site(web_copy: WebCopy) -> Iterator[FastAPI]:
    from landscape.web import create_site

    app = create_site(web_copy.settings())
    yield app
    app.state.landscape.engine.dispose()


def login(
    client: TestClient, name: str = "ana", password: str = PASSWORD, next_url: str = "/"
) -> httpx.Response:
    """Log in through the form as a browser would; the response of the POST."""
    page = client.get("/login", params={"next": next_url})
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert token is not None
    return client.post(
        "/login",
        data={"name": name, "password": password, "csrf": token.group(1), "next": next_url},
        follow_redirects=False,
    )


def csrf_of(html: str) -> str:
    """The session's CSRF token on a page."""
    found = re.search(r'<meta name="csrf-token" content="([^"]*)">', html)
    assert found is not None
    return found.group(1)


@pytest.fixture
def client(site: FastAPI) -> Iterator[TestClient]:
    """An anonymous browser-like client (its own cookies)."""
    with TestClient(site, base_url="http://testserver") as test_client:
        yield test_client


@pytest.fixture
def ana(client: TestClient) -> TestClient:
    """A client logged in as the admin ``ana``."""
    assert login(client).status_code == 303
    return client


# --- a live server for the browser tests ------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class LiveServer:
    url: str
    app: FastAPI


@pytest.fixture(scope="module")
def live_server(site: FastAPI) -> Iterator[LiveServer]:
    """The site served by uvicorn on a free port, in a thread."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(site, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("the test server did not start")
        time.sleep(0.05)
    yield LiveServer(f"http://127.0.0.1:{port}", site)
    server.should_exit = True
    thread.join(timeout=10)


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--disable-quic",
    "--disable-sync",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where browser tests save screenshots: ``$LANDSCAPE_SCREENSHOTS`` (``docs/screenshots``
    to refresh the committed ones), else a temporary folder."""
    target = os.environ.get("LANDSCAPE_SCREENSHOTS")
    folder = Path(target) if target else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextlib.contextmanager
def chromium(profile: Path) -> Iterator[Any]:
    """A headless Chromium context with a fresh profile at 1280×800 (a clear failure when
    Debian's Chromium is missing)."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install it with "
            "`apt-get install -y --no-install-recommends chromium` (.ci/run does)",
            pytrace=False,
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 800},
        )
        context.set_default_timeout(20_000)
        try:
            yield context
        finally:
            context.close()


def watched_tab(context: Any) -> Any:
    """A new tab whose Content-Security-Policy violations and script errors are collected in
    ``tab.problems`` (browser tests assert it stays empty)."""
    tab = context.new_page()
    problems: list[str] = []
    tab.on(
        "console",
        lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None,
    )
    tab.on("pageerror", lambda e: problems.append(f"script error: {e}"))
    tab.problems = problems
    return tab

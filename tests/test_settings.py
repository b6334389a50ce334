"""Settings from the environment, and the light modules that must not import torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from landscape.settings import Settings, get_settings


def test_settings_come_from_landscape_variables(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LANDSCAPE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LANDSCAPE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("LANDSCAPE_WEIGHTS_MIRROR", "http://127.0.0.1:9/w")
    monkeypatch.setenv("LANDSCAPE_DEBUG", "1")
    monkeypatch.delenv("LANDSCAPE_DB", raising=False)
    s = get_settings()
    assert s.data_dir == tmp_path / "home"
    assert s.cache_dir == tmp_path / "cache"
    assert s.weights_mirror == "http://127.0.0.1:9/w"
    assert s.debug is True
    assert s.database_url == f"sqlite:///{tmp_path / 'home' / 'landscape.db'}"
    monkeypatch.setenv("LANDSCAPE_DB", "postgresql+psycopg://u@127.0.0.1:5432/idx")
    assert get_settings().database_url == "postgresql+psycopg://u@127.0.0.1:5432/idx"


def test_defaults_are_the_platform_user_dirs(monkeypatch: pytest.MonkeyPatch) -> None:
    from platformdirs import user_cache_path, user_data_path

    for name in ("HOME", "CACHE", "DB", "WEIGHTS_MIRROR", "DEBUG"):
        monkeypatch.delenv(f"LANDSCAPE_{name}", raising=False)
    s = Settings()
    assert s.data_dir == user_data_path("landscape")
    assert s.cache_dir == user_cache_path("landscape")
    assert s.weights_mirror is None and s.debug is False
    assert s.database_url.startswith("sqlite:///") and s.database_url.endswith("landscape.db")


def test_keyword_arguments_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANDSCAPE_DB", "sqlite:///from-env.db")
    assert Settings(db="sqlite:///given.db").database_url == "sqlite:///given.db"


@pytest.mark.parametrize("module", ["landscape", "landscape.config", "landscape.settings"])
def test_light_modules_do_not_import_torch(module: str) -> None:
    code = f"import sys, {module}; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_public_api_is_reexported_lazily() -> None:
    code = (
        "import sys, landscape; names = landscape.__all__; "
        "assert 'torch' not in sys.modules; "
        "objs = [getattr(landscape, n) for n in names]; "
        "from landscape.inference.predictor import Predictor; "
        "assert landscape.Predictor is Predictor; print(len(objs))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    import landscape

    assert int(out.stdout) == len(landscape.__all__) >= 20
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = landscape.nope

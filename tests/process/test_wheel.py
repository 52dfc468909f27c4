"""A built wheel carries the dashboard's templates and static files where the app looks for them."""

from __future__ import annotations

import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    uv = shutil.which("uv")
    if uv is None:
        pytest.fail("uv is not on PATH: the wheel test builds with `uv build --wheel`")
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run(
        [uv, "build", "--wheel", "--out-dir", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    (built,) = out.glob("bitcore-*.whl")
    return zipfile.ZipFile(built)


def test_wheel_carries_every_template_and_static_file(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    for folder in ("templates", "static"):
        for source in (ROOT / folder).rglob("*"):
            if source.is_file():
                packaged = f"dashboard/{folder}/{source.relative_to(ROOT / folder).as_posix()}"
                assert packaged in names, f"{packaged} missing from the wheel"
    assert {"dashboard/templates/base.html", "dashboard/static/style.css"} <= names


def test_wheel_carries_both_packages(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    assert {
        "bitcore/__init__.py",
        "bitcore/demo.py",
        "dashboard/__init__.py",
        "dashboard/auth.py",
        "dashboard/views/pages.py",
        "dashboard/forms/fields.py",
        "dashboard/presenters/charts.py",
    } <= names
    assert not any(name.startswith(("tests/", "instance/")) for name in names)

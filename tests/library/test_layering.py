"""The library stands alone and is one stack: nothing in ``bitcore/`` imports the web layer, and
its modules import only downward (the import-linter contracts in ``pyproject.toml``)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import bitcore

FORBIDDEN = {"flask", "wtforms", "flask_wtf", "dashboard", "wsgi"}
LIBRARY = Path(bitcore.__file__).parent
MODULES = sorted(LIBRARY.rglob("*.py"))


def imported_modules(tree: ast.AST) -> set[str]:
    """Top-level names of every module imported anywhere in ``tree`` (functions included)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and getattr(node.func, "attr", getattr(node.func, "id", ""))
            in {"import_module", "__import__"}
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names.add(node.args[0].value.split(".")[0])
    return names


def test_the_library_has_modules_to_check() -> None:
    assert {"client.py", "events.py", "bitops.py", "keys.py"} <= {p.name for p in MODULES}


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(LIBRARY)))
def test_no_library_module_imports_the_web_layer(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    assert not imported_modules(tree) & FORBIDDEN


def test_the_checker_sees_every_form_of_import() -> None:
    source = """
import flask
import wtforms.fields as f
from flask_wtf import FlaskForm
def late():
    from dashboard.pages import view
    importlib.import_module("wsgi")
from . import sibling
"""
    assert imported_modules(ast.parse(source)) >= FORBIDDEN


ROOT = LIBRARY.parent


def test_the_import_contracts_hold() -> None:
    """``lint-imports`` (import-linter) checks the layers of ``pyproject.toml``: bitcore is one
    stack with no import loops, and never imports flask, wtforms, werkzeug or the dashboard; the
    dashboard is layered too (entry points and pages over forms and presenters over plumbing)."""
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint), "--no-cache", "--config", str(ROOT / "pyproject.toml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def late_library_imports(tree: ast.AST) -> list[str]:
    """bitcore modules imported inside a function: the way an import loop is usually hidden."""
    found = []
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(function):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("bitcore"):
                found.append(f"line {node.lineno}: from {node.module} import ...")
            elif isinstance(node, ast.Import):
                found += [f"line {node.lineno}: import {a.name}" for a in node.names
                          if a.name.startswith("bitcore")]  # fmt: skip
    return found


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(LIBRARY)))
def test_no_library_module_imports_bitcore_inside_a_function(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    assert late_library_imports(tree) == []


def test_the_late_import_checker_sees_them() -> None:
    source = """
def f():
    from bitcore.systems import client_for
    import bitcore.client
"""
    assert len(late_library_imports(ast.parse(source))) == 2

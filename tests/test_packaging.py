"""The installed distribution, and the promise that common/ does no I/O.

The first test runs a fresh interpreter outside the checkout, so ``import
common`` can only find the installed package: it proves the HTML pages are
package data in the distribution, not files that happen to sit beside the
source. The others read common/'s source with ``ast``: the core (every module
directly in common/) must not import sockets, threads, event loops,
selectors, signals or processes, nor common.runtime, and the protocol
modules must not even import ``time``.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
COMMON = ROOT / "common"

FIND = """
import importlib.util, json
spec = importlib.util.find_spec("common")
print(json.dumps(None if spec is None else spec.origin))
"""

LOAD = """
import json
from common.routes import Pages
pages = Pages.load()
found = {"hello": pages.hello.decode(), "not_found": pages.not_found.decode()}
print(json.dumps(found))
"""


def run_outside_checkout(code: str, cwd: Path) -> str:
    """Run ``code`` in a new interpreter that cannot see the checkout.

    ``-I`` (isolated mode) drops PYTHONPATH, the user site and the current
    directory from ``sys.path``; ``cwd`` is a temporary directory anyway.
    """
    result = subprocess.run(
        [sys.executable, "-I", "-c", code],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_pages_load_from_the_installed_distribution(tmp_path: Path) -> None:
    origin = json.loads(run_outside_checkout(FIND, tmp_path))
    if origin is None:
        pytest.skip(
            "common is not installed in this interpreter (run `pip install .` "
            "to check the distribution's package data)"
        )
    if Path(origin).resolve().is_relative_to(ROOT):
        pytest.skip(
            "common is an editable install of this checkout: its pages are the "
            "source files, so this proves nothing about the distribution"
        )
    pages = json.loads(run_outside_checkout(LOAD, tmp_path))
    assert "<title>Hello!</title>" in pages["hello"]
    assert "<h1>Hello!</h1>" in pages["hello"]
    assert "Hi from Python" in pages["hello"]
    assert "<h1>Oops!</h1>" in pages["not_found"]
    assert "Sorry, I don't know what you're asking for." in pages["not_found"]


def imported_modules(path: Path) -> set[str]:
    """Top-level names of every module ``path`` imports, anywhere in the file."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.partition(".")[0])
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "__import__"
        ):
            names.add("__import__")  # dynamic imports would hide from this check
    return names


SOURCES = sorted(COMMON.glob("*.py"))
"""The sans-I/O core: every module directly in common/, with no exemption.
What touches the OS lives in common/runtime/, which imports the core."""
RUNTIME = sorted((COMMON / "runtime").glob("*.py"))


def test_the_core_modules_are_all_checked() -> None:
    names = {path.name for path in SOURCES}
    assert {"parser.py", "connection.py", "routes.py", "response.py"} <= names
    assert {"listener.py", "supervisor.py", "cli.py"} <= {p.name for p in RUNTIME}


@pytest.mark.parametrize("path", SOURCES, ids=lambda path: path.name)
def test_common_does_no_io_of_its_own(path: Path) -> None:
    """The sans-I/O core: no sockets, threads, event loops, signals or processes."""
    forbidden = {
        "socket",
        "threading",
        "_thread",
        "asyncio",
        "selectors",
        "select",
        "signal",
        "resource",
        "ctypes",
        "multiprocessing",
        "concurrent",
        "subprocess",
        "__import__",
    }
    assert imported_modules(path) & forbidden == set()


def imported_names(path: Path) -> set[str]:
    """Every dotted module name ``path`` imports, with ``from`` imports' names."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


@pytest.mark.parametrize("path", SOURCES, ids=lambda path: path.name)
def test_the_core_does_not_import_the_runtime(path: Path) -> None:
    runtime = [name for name in imported_names(path) if "runtime" in name.split(".")]
    assert runtime == []


@pytest.mark.parametrize("name", ["parser.py", "connection.py", "routes.py"])
def test_the_protocol_modules_do_not_import_time(name: str) -> None:
    """No clock and no sleeping in the protocol: delays are the shells' job."""
    assert "time" not in imported_modules(COMMON / name)


@pytest.mark.parametrize("path", SOURCES, ids=lambda path: path.name)
def test_common_never_sleeps(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    sleeps = [
        node.lineno
        for node in ast.walk(tree)
        if (isinstance(node, ast.Attribute) and node.attr == "sleep")
        or (isinstance(node, ast.Name) and node.id == "sleep")
    ]
    assert sleeps == []


def test_the_checker_sees_imports_in_every_form(tmp_path: Path) -> None:
    """The guard above would be worthless if it missed an import form."""
    source = tmp_path / "sample.py"
    source.write_text(
        "import os.path\n"
        "from asyncio import sleep\n"
        "def f():\n"
        "    import socket as s\n"
        "    from concurrent.futures import ThreadPoolExecutor\n"
        "    __import__('threading')\n"
        "from . import sibling\n"
    )
    assert imported_modules(source) == {
        "os",
        "asyncio",
        "socket",
        "concurrent",
        "__import__",
    }

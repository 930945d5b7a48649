"""The import structure holds: the contracts of `.importlinter` (layers, the agent a leaf, the
providers knowing nothing of the app), no cycle among the app's modules, nothing imported
from a library's private modules, and a reason beside every function-local import."""

import ast
import io
import subprocess
import sys
import tokenize
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("whatsbot", "webhooks", "conversations", "profiles", "integrations")
# Libraries whose private parts (a module or name starting with "_") change without notice.
LIBRARIES = ("openai", "celery", "kombu", "django", "psycopg", "psycopg_pool", "redis", "httpx", "aiohttp")


def test_the_import_contracts_hold():
    result = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--config", str(ROOT / ".importlinter"), "--no-cache"],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def cycles(graph) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []
    counter = iter(range(10**9))

    def visit(module: str) -> None:
        index[module] = low[module] = next(counter)
        stack.append(module)
        on_stack.add(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found


def test_no_module_imports_itself_through_others():
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    graph = grimp.ImportGraph()
    for module in ("a", "a.b", "a.c", "a.d"):
        graph.add_module(module)
    graph.add_import(importer="a.b", imported="a.c")
    graph.add_import(importer="a.c", imported="a.b")
    graph.add_import(importer="a.c", imported="a.d")
    assert cycles(graph) == [["a.b", "a.c"]]


# --- what the modules import, read from their source ---------------------------------------


def app_modules() -> list[Path]:
    return sorted(path for package in PACKAGES for path in (ROOT / package).rglob("*.py"))


def _private(part: str) -> bool:
    return part.startswith("_") and not (part.startswith("__") and part.endswith("__"))  # __version__ is public


def private_imports(source: str) -> list[str]:
    """The imports of a LIBRARIES module or name with a private part: "line: dotted path"."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            paths = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            paths = [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for path in paths:
            parts = path.split(".")
            if parts[0] in LIBRARIES and any(_private(part) for part in parts):
                found.append(f"{node.lineno}: {path}")
    return found


def silent_local_imports(source: str) -> list[str]:
    """The imports inside a function with no comment on their lines or on a line of its own
    just above: "line: statement"."""
    lines = source.splitlines()
    commented = {token.start[0] for token in tokenize.generate_tokens(io.StringIO(source).readline) if token.type == tokenize.COMMENT}
    found = []
    for function in ast.walk(ast.parse(source)):
        if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(function):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            own = commented.intersection(range(node.lineno, node.end_lineno + 1))
            above = node.lineno - 1 in commented and lines[node.lineno - 2].lstrip().startswith("#")
            if not (own or above):
                found.append(f"{node.lineno}: {lines[node.lineno - 1].strip()}")
    return sorted(set(found))


def test_no_app_module_imports_a_private_part_of_a_library():
    found = {str(path.relative_to(ROOT)): private_imports(path.read_text()) for path in app_modules()}
    assert {path: imports for path, imports in found.items() if imports} == {}


def test_every_function_local_import_says_why_it_is_there():
    found = {str(path.relative_to(ROOT)): silent_local_imports(path.read_text()) for path in app_modules()}
    assert {path: imports for path, imports in found.items() if imports} == {}


def test_the_import_checks_find_what_they_look_for():
    source = """
import openai._base_client
from celery.app import _state
from kombu.transport.redis import _after_fork
from django.utils.translation import gettext as _
from celery import __version__
from . import _private_of_ours
from somewhere_else import _theirs


def silent():
    from django.db import connection

    return connection


def explained():
    # Imported when called: the apps are not loaded when this module is.
    from django.db import connection

    x = 1  # a comment on the line above that belongs to other code does not count
    from django.db import connections
    from django.conf import settings  # noqa: F401  (reason given on the line)

    return connection, connections, settings
"""
    assert private_imports(source) == ["2: openai._base_client", "3: celery.app._state", "4: kombu.transport.redis._after_fork"]
    assert silent_local_imports(source) == ["12: from django.db import connection", "22: from django.db import connections"]

"""The library speaks in domain terms (issue 16 §2): a static scan of every module of `gridmap` (no import runs).

- no module imports the web stack (fastapi, starlette, uvicorn) or folium, not even inside a function;
- only the command line (`gridmap/cli.py`) reaches into `api`, and only inside a function (it starts the server
  through `gridmap_api.server.serve`); no other module imports `gridmap.cli` — the command line is not the library's
  core;
- no HTTP header name appears in any string or comment (errors name a domain field; api/gridmap_api/errors.py names the
  header), no `/api/` address (the API composes its links from ids and codes), and no raise carries an HTTP status
  (errors carry a kind; api/gridmap_api/errors.py maps kinds to statuses).
"""

from __future__ import annotations

import ast
import re
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = ROOT / "gridmap"
MODULES = sorted(p for p in LIBRARY.rglob("*.py") if "__pycache__" not in p.parts)
WEB_STACK = {"fastapi", "starlette", "uvicorn", "folium"}
APP_PACKAGES = {"api", "web", "gridmap_api", "gridmap_web"}  # the adapters, before and after the relayout
CLI = LIBRARY / "cli.py"

HEADERS = [
    "If-Match",
    "If-None-Match",
    "If-Modified-Since",
    "ETag",
    "Idempotency-Key",
    "Authorization",
    "Retry-After",
    "Content-Type",
    "Content-Length",
    "Content-Disposition",
    "WWW-Authenticate",
    "Accept-Language",
    "Cache-Control",
    "Set-Cookie",
]
HEADER = re.compile(
    r"\b(?:" + "|".join(map(re.escape, HEADERS)) + r")\b"  # and any X-… name:
    r"|(?<![\w-])X-[A-Z][A-Za-z0-9]*(?:-[A-Za-z0-9]+)*"
)
LOCATION_HEADER = re.compile(r"^\s*Location\s*:?\s*$|^Location: ")  # the header as a string (`Location` is a class)
API_ADDRESS = re.compile(r"/api/")
STATUSES = range(400, 600)


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _imports(tree: ast.AST) -> list[tuple[str, ast.AST]]:
    """(module imported, node) for every import statement, at any depth."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module, node))
            if node.module == "gridmap":
                found += [(f"gridmap.{alias.name}", node) for alias in node.names]
    return found


def _top_level_nodes(tree: ast.Module) -> set[int]:
    """ids of the import nodes run when the module is imported (outside any function)."""
    out: set[int] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                out.add(id(child))
            visit(child)

    visit(tree)
    return out


def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def test_the_scan_sees_the_library():
    assert len(MODULES) > 30 and CLI in MODULES and LIBRARY / "errors.py" in MODULES


@pytest.mark.parametrize("path", MODULES, ids=_rel)
def test_no_module_imports_the_web_stack(path: Path):
    tree = _parse(path)
    top = _top_level_nodes(tree)
    bad = []
    for name, node in _imports(tree):
        root = name.split(".")[0]
        if root in WEB_STACK:
            bad.append(f"line {node.lineno}: imports {name}")
        elif root in APP_PACKAGES and (path != CLI or id(node) in top):
            bad.append(f"line {node.lineno}: imports {name}" + (" at import time" if path == CLI else ""))
        elif name == "gridmap.cli" and path != CLI:
            bad.append(f"line {node.lineno}: imports the command line (gridmap.cli)")
    assert not bad, f"{_rel(path)}: " + "; ".join(bad)


def _texts(path: Path) -> list[tuple[int, str]]:
    """(line, text) of every string literal and comment of a module."""
    out = []
    with path.open("rb") as f:
        for tok in tokenize.tokenize(f.readline):
            if tok.type in (tokenize.STRING, tokenize.COMMENT) or tok.type == getattr(tokenize, "FSTRING_MIDDLE", -1):
                out.append((tok.start[0], tok.string))
    return out


@pytest.mark.parametrize("path", MODULES, ids=_rel)
def test_no_header_names_or_api_addresses(path: Path):
    bad = []
    for line, text in _texts(path):
        for match in HEADER.finditer(text):
            bad.append(f"line {line}: header {match.group()!r}")
        body = text.strip("'\"rbuf")
        if LOCATION_HEADER.search(body):
            bad.append(f"line {line}: header 'Location'")
        if API_ADDRESS.search(text):
            bad.append(f"line {line}: an API address in {text.strip()[:60]!r}")
    assert not bad, f"{_rel(path)}: " + "; ".join(bad)


def _status_ints(call: ast.Call) -> list[int]:
    args = [*call.args, *(k.value for k in call.keywords)]
    return [a.value for a in args if isinstance(a, ast.Constant) and type(a.value) is int and a.value in STATUSES]


@pytest.mark.parametrize("path", MODULES, ids=_rel)
def test_no_raise_carries_an_http_status(path: Path):
    bad = []
    for node in ast.walk(_parse(path)):
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
            bad += [f"line {node.lineno}: raises with {n}" for n in _status_ints(node.exc)]
    assert not bad, f"{_rel(path)}: " + "; ".join(bad)


# -- the scan itself catches what it is meant to catch ------------------------------------------------------------


def _scan_source(tmp_path: Path, source: str) -> list[str]:
    path = tmp_path / "mod.py"
    path.write_text(source, encoding="utf-8")
    tree = _parse(path)
    found = [name for name, _ in _imports(tree) if name.split(".")[0] in WEB_STACK | APP_PACKAGES]
    found += [m.group() for _, text in _texts(path) for m in HEADER.finditer(text)]
    found += [text for _, text in _texts(path) if API_ADDRESS.search(text)]
    found += [
        str(n)
        for node in ast.walk(tree)
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call)
        for n in _status_ints(node.exc)
    ]
    return found


def test_the_scan_finds_what_it_looks_for(tmp_path: Path):
    source = """
def f():
    import starlette.requests
    from fastapi import Depends
    raise Refused(412, "If-Match: stale")  # see X-Request-Id
    raise Refused("see GET /api/v1/categories", status=409)
"""
    found = _scan_source(tmp_path, source)
    assert {"starlette.requests", "fastapi", "If-Match", "X-Request-Id", "412"} <= set(found)
    assert any("/api/v1/categories" in f for f in found)
    assert _scan_source(tmp_path, 'from gridmap.geo.index import Location\nx = "the X-axis, 404 m"\n') == []


# -- the packages are layers: imports point down (issue 16 §6; README "Architecture") -----------------------------

# bottom to top; a module may import its own layer and the layers below it
LAYERS = [
    {"errors", "textcheck"},
    {"geo"},
    {"io"},
    {"store"},
    {"calendar"},
    {"access"},
    {"boundaries"},
    {"locating"},
    {"cases"},
    {"planning"},
    {"views"},
    {"runtime", "cli", "demo"},
]
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}
# the imports that still point up (README "Architecture" names them): (importing module, imported package)
UPWARD = {
    ("gridmap.boundaries.generations", "runtime"),  # installs the hooks that tell other processes of a change
    ("gridmap.boundaries.generations", "planning"),  # redraws handed to planning.edit, activation to planning.publish
    ("gridmap.boundaries.generations", "locating"),  # the index cache folder of locating.batch
    ("gridmap.locating.batch", "cases"),  # for type checking only: the progress bar's protocol in cases.bulk
}


def _layer_of(module: str) -> str:
    return module.split(".")[1]


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_every_library_module_has_a_layer():
    names = {_layer_of(_module_name(p)) for p in MODULES if p != LIBRARY / "__init__.py"}
    assert names <= set(RANK), f"modules outside every layer: {sorted(names - set(RANK))}"


@pytest.mark.parametrize("path", [p for p in MODULES if p != LIBRARY / "__init__.py"], ids=_rel)
def test_imports_point_down(path: Path):
    module = _module_name(path)
    own = RANK[_layer_of(module)]
    bad = []
    for name, node in _imports(_parse(path)):
        if not name.startswith("gridmap.") or name.split(".")[1] not in RANK:
            continue
        target = _layer_of(name)
        if RANK[target] > own and (module, target) not in UPWARD:
            bad.append(f"line {node.lineno}: imports {name} (layer {target} is above {_layer_of(module)})")
    assert not bad, f"{_rel(path)}: " + "; ".join(bad)


def test_the_known_upward_imports_are_still_there():
    """An exception that is no longer needed is removed from UPWARD (so the list stays the true list)."""
    seen = set()
    for path in MODULES:
        module = _module_name(path)
        for name, _node in _imports(_parse(path)):
            if name.startswith("gridmap.") and name.split(".")[1] in RANK:
                seen.add((module, _layer_of(name)))
    assert seen >= UPWARD, f"no longer imported: {sorted(UPWARD - seen)}"

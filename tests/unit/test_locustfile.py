"""The load test's user classes (tests/benchmarks/locustfile.py) ask only for operations the app has.

Locust lives in its own environment (.venv-load), so the file is read, not imported: its PATHS table and every
URL its users request (string or f-string as the first argument of `self.client.get/post`) must be operations of
the app's OpenAPI, with the method used."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from gridmap_api.main import create_app
from gridmap_api.settings import Settings

LOCUSTFILE = Path(__file__).resolve().parents[1] / "benchmarks" / "locustfile.py"


def _operations() -> set[tuple[str, str]]:
    app = create_app(Settings(database_url="sqlite://", gateway_secret=""))
    return {(m.lower(), p) for p, items in app.openapi()["paths"].items() for m in items}


def _template(node: ast.expr) -> str | None:
    """A URL literal as a pattern: an f-string's fields become `{}`."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
    return None


def _requests(tree: ast.Module) -> list[tuple[str, str]]:
    """(method, url pattern) of every `self.client.get/post(...)` in the file."""
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("get", "post")
            and isinstance(node.func.value, ast.Attribute)
            and node.func.value.attr == "client"
            and node.args
        ):
            url = _template(node.args[0])
            if url is not None:
                found.append((node.func.attr, url))
            elif isinstance(node.args[0], ast.Subscript):  # PATHS["token"][1]
                found.append((node.func.attr, "PATHS"))
    return found


def _matches(url: str, path: str) -> bool:
    """Does a requested URL pattern fit an OpenAPI path (`{…}` in either matches one or more characters)?"""
    pattern = "".join(
        ".+" if part.startswith("{") else re.escape(part) for part in re.split(r"(\{[^}]*\})", path) if part
    )
    concrete = re.sub(r"\{[^}]*\}", "x", url)
    return re.fullmatch(pattern, concrete) is not None


def test_locustfile_requests_exist_in_openapi():
    tree = ast.parse(LOCUSTFILE.read_text(encoding="utf-8"))
    operations = _operations()
    paths = next(
        ast.literal_eval(n.value)
        for n in tree.body
        if isinstance(n, ast.Assign) and any(getattr(t, "id", "") == "PATHS" for t in n.targets)
    )
    missing = [(m, p) for m, p in paths.values() if (m, p) not in operations]
    assert not missing, f"PATHS not in the app's OpenAPI: {missing}"
    requests = [(m, u) for m, u in _requests(tree) if u != "PATHS"]
    assert len(requests) >= 8, requests  # the file was read: every kind of request is there
    unknown = [(m, u) for m, u in requests if not any(m == om and _matches(u, op) for om, op in operations)]
    assert not unknown, f"requests with no operation in the app's OpenAPI: {unknown}"
    used = {(m, p) for m, p in paths.values() if any(m == rm and _matches(u, p) for rm, u in requests)} | {
        paths["token"]
    }
    assert used == set(paths.values()), f"PATHS lists operations no user asks for: {set(paths.values()) - used}"


def test_matching_can_fail():
    assert _matches("/api/v1/tiles/{}/{}/{}/{}.mvt", "/api/v1/tiles/{layer}/{z}/{x}/{y}.mvt")
    assert not _matches("/api/v1/tile/{}/{}/{}/{}.mvt", "/api/v1/tiles/{layer}/{z}/{x}/{y}.mvt")
    assert not _matches("/api/v1/cases/list", "/api/v1/cases")

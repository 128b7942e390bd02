"""One transaction pattern for the writes (issue 16 §2), read off the app's routes and the route modules' source.

Every write route (POST, PUT, PATCH, DELETE) that works in the database takes the request's session, `SessionDep`:
function-scoped, so its transaction commits when the route function returns and before the response is sent (an
acknowledged write survives a crash: tests/integration/test_durability.py), with `after_commit` for the work that
follows the commit. A route commits earlier only through `commit_now` (an answer reporting what the commit
caused). No route module calls `session.commit()` itself, except those listed below, whose library call runs
transactions of its own (each committed before it returns), for the reason given."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

from fastapi import routing
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from gridmap_api import deps
from gridmap_api.main import create_app
from gridmap_api.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
WRITES = {"POST", "PUT", "PATCH", "DELETE"}

OWN_TRANSACTIONS = {  # (endpoint module, endpoint name) → why it does not work in the request's session
    (
        "gridmap_api.routes.cases",
        "create_case",
    ): "intake at most once per idempotency key: cases.create_case_once retries "
    "a race on the key in a transaction of its own",
    ("gridmap_api.routes.cases", "create_patrol_report"): "the same intake (patrol.report → cases.create_case_once)",
    ("gridmap_api.routes.open311", "post_request"): "the same intake, from Open311",
    (
        "gridmap_api.routes.attachments",
        "add_attachment",
    ): "the image is checked and re-encoded outside any transaction; the files are removed again when the commit fails",
    (
        "gridmap_api.routes.imports",
        "import_hotline",
    ): "a long import in batches, each committed (gridmap.cases.hotline)",
    ("gridmap_api.routes.auth", "issue_token"): "sign-in: a failed attempt is recorded though the answer is a refusal "
    "(the request's session would roll it back)",
    ("gridmap_api.routes.auth", "login_submit"): "the same sign-in, from the page",
}
READS = {  # write methods that only read
    (
        "gridmap_api.routes.locate",
        "locate_batch",
    ): "locates a batch sent in the body (POST for its size); writes nothing",
    ("gridmap_api.routes.open311", "unknown"): "answers 404 in the spec's format",
}
DIRECT_COMMITS = {
    "api/gridmap_api/routes/attachments.py": "see OWN_TRANSACTIONS: commits its own session, discarding the "
    "stored files when the commit fails"
}


def _session_dependencies(dependant: Dependant) -> list[Dependant]:
    found = []
    for sub in dependant.dependencies:
        if sub.call is deps.get_session:
            found.append(sub)
        found += _session_dependencies(sub)
    return found


def _write_routes() -> list[tuple[str, APIRoute]]:
    app = create_app(Settings(database_url="sqlite://", gateway_secret=""))
    out = []
    for context in routing.iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIRoute) and route.methods & WRITES:
            out.append((f"{sorted(route.methods & WRITES)} {context.path}", route))
    return out


def test_every_write_route_commits_through_the_session_dependency():
    routes = _write_routes()
    assert len(routes) > 30
    wrong, listed = [], set()
    for label, route in routes:
        key = (route.endpoint.__module__, route.endpoint.__name__)
        sessions = _session_dependencies(route.dependant)
        if key in OWN_TRANSACTIONS or key in READS:
            listed.add(key)
            if sessions and key in OWN_TRANSACTIONS:
                wrong.append(f"{label}: listed as running its own transactions, yet takes SessionDep")
            continue
        if not sessions:
            wrong.append(f"{label} ({key[0]}.{key[1]}): takes no SessionDep and is not listed")
        elif any(s.scope != "function" for s in sessions):
            wrong.append(f"{label}: its session ends after the response is sent (scope {sessions[0].scope!r})")
    assert not wrong, "\n".join(wrong)
    assert listed == set(OWN_TRANSACTIONS) | set(READS), "a listed route no longer exists"


def test_the_session_dependency_ends_before_the_response():
    """`SessionDep` is function-scoped: FastAPI's default for a dependency with yield ends it after the response."""
    metadata = [m for m in deps.SessionDep.__metadata__ if getattr(m, "dependency", None) is deps.get_session]
    assert metadata and metadata[0].scope == "function"


def _commit_calls(path: Path) -> list[int]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "commit"
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "session"
    ]


def test_no_route_module_commits_by_itself():
    found = {}
    for path in sorted((ROOT / "api" / "gridmap_api" / "routes").glob("*.py")):
        lines = _commit_calls(path)
        rel = str(path.relative_to(ROOT))
        if lines and rel not in DIRECT_COMMITS:
            found[rel] = lines
    assert not found, f"session.commit() in route modules (use SessionDep, after_commit or commit_now): {found}"
    assert inspect.getsource(deps.commit_now).count("session.commit()") == 1

"""The API's contract is written down: /openapi.json documents a typed body for every 2xx answer of every operation
(a model's schema for JSON, a binary or text string for files, tiles, images and XML), every request body is a
model with named fields, the errors are documented as problem+json, and no route takes a raw `dict` body (the
models live in api/gridmap_api/schemas/). The document is read as clients read it, from the app; the app is not
started, so
no database is needed."""

from __future__ import annotations

import inspect
import re
import typing
from typing import Any

import pytest
from fastapi.routing import APIRoute

from gridmap_api.settings import Settings
from tests.conftest import api_client

NO_BODY = {"204", "304"}  # answers that have no body by definition
JSON_TYPES = ("application/json", "application/geo+json", "application/problem+json")
# Open311 answers errors as the GeoReport spec says (a list of code and description, XML or JSON), not problem+json
SPEC_ERRORS = ("/open311/",)


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    return api_client(Settings(database_url=f"sqlite:///{tmp_path_factory.mktemp('openapi')}/none.sqlite")).app


@pytest.fixture(scope="module")
def document(app):
    from fastapi.testclient import TestClient

    r = TestClient(app).get("/openapi.json")
    assert r.status_code == 200, r.text
    return r.json()


def _operations(document: dict) -> list[tuple[str, str, dict]]:
    return [
        (method.upper(), path, op)
        for path, ops in document["paths"].items()
        for method, op in ops.items()
        if method in ("get", "post", "put", "patch", "delete")
    ]


def _resolve(document: dict, schema: dict) -> dict:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = document["components"]["schemas"][name]
    return schema


def _typed(document: dict, schema: dict, *, json: bool, depth: int = 0) -> bool:
    """A schema that says what the body holds: a model with named fields, a list of typed items, a union of typed
    schemas; for a file or text, a string. `{}` and a bare object (`additionalProperties` only) are untyped."""
    if depth > 20:
        return True
    schema = _resolve(document, schema)
    if "anyOf" in schema or "oneOf" in schema:
        options = [s for s in schema.get("anyOf", schema.get("oneOf", [])) if s.get("type") != "null"]
        return bool(options) and all(_typed(document, s, json=json, depth=depth + 1) for s in options)
    kind = schema.get("type")
    if kind == "array":
        return "items" in schema and _typed(document, schema["items"], json=json, depth=depth + 1)
    if kind == "object" or "properties" in schema:
        return bool(schema.get("properties"))
    if kind == "string":  # a file (any type, a GeoJSON download too), or text that is not JSON
        return schema.get("format") == "binary" or not json or "enum" in schema or "const" in schema
    return False


def test_the_document_lists_the_operations(document):
    assert len(_operations(document)) >= 80  # the API's size when this test was written (87 operations)


def test_every_operation_documents_a_typed_body_for_its_2xx_answers(document):
    missing = []
    for method, path, op in _operations(document):
        answers = {code: r for code, r in op.get("responses", {}).items() if code.startswith("2")}
        if not answers:
            missing.append(f"{method} {path}: no 2xx answer")
        for code, answer in answers.items():
            if code in NO_BODY:
                if answer.get("content"):
                    missing.append(f"{method} {path} {code}: a {code} has no body, yet content is documented")
                continue
            content = answer.get("content") or {}
            if not content:
                missing.append(f"{method} {path} {code}: no content")
            for media, entry in content.items():
                json = media.split(";")[0].strip() in JSON_TYPES
                if not _typed(document, entry.get("schema") or {}, json=json):
                    missing.append(f"{method} {path} {code} {media}: untyped schema {entry.get('schema')}")
    assert not missing, "\n".join(missing)


def test_every_request_body_is_typed(document):
    untyped = []
    for method, path, op in _operations(document):
        body = op.get("requestBody")
        if body is None:
            continue
        for media, entry in (body.get("content") or {}).items():
            schema = entry.get("schema") or {}
            resolved = _resolve(document, schema)
            if not resolved.get("properties") and not (
                resolved.get("type") == "string" and resolved.get("format") == "binary"
            ):
                untyped.append(f"{method} {path} {media}: {schema}")
    assert not untyped, "\n".join(untyped)


def test_errors_are_documented_as_problem_json(document):
    assert "Problem" in document["components"]["schemas"]
    problem = document["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "detail", "code", "field", "errors"} <= set(problem["properties"])
    undocumented = []
    for method, path, op in _operations(document):
        if path.startswith(SPEC_ERRORS):
            continue
        errors = {code: r for code, r in op.get("responses", {}).items() if code.startswith("4")}
        shown = [
            code
            for code, r in errors.items()
            if r.get("content", {})
            .get("application/problem+json", {})
            .get("schema", {})
            .get("$ref", "")
            .endswith("/Problem")
        ]
        if not shown or "422" in errors and "422" not in shown:  # FastAPI's own 422 shape is never sent
            undocumented.append(f"{method} {path}: 4xx documented as problem+json: {shown}")
    assert not undocumented, "\n".join(undocumented)


def test_every_schema_has_its_own_name(document):
    """Two models with one name are published under their module path (`gridmap_api__schemas__locate__BatchOut`):
    a client generated from the document gets such class names, and the two are easily confused. Each model's
    name is unique, so that every schema is listed under a plain name."""
    names = list(document["components"]["schemas"])
    clashes = [name for name in names if "__" in name or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name)]
    assert not clashes, f"schemas named by their module (two models share a name): {clashes}"


def _base(annotation: Any) -> Any:
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def _is_dict(annotation: Any) -> bool:
    annotation = _base(annotation)
    if annotation is dict or typing.get_origin(annotation) is dict or annotation is Any:
        return True
    if typing.get_origin(annotation) in (typing.Union, __import__("types").UnionType):
        return any(_is_dict(a) for a in typing.get_args(annotation) if a is not type(None))
    return False


def test_no_route_takes_a_raw_dict_body(app):
    raw = []
    for route in app.routes:
        if not isinstance(route, APIRoute):
            continue
        hints = typing.get_type_hints(route.endpoint, include_extras=True)
        for name in inspect.signature(route.endpoint).parameters:
            if name in hints and _is_dict(hints[name]):
                raw.append(f"{','.join(sorted(route.methods))} {route.path}: parameter {name} is {hints[name]}")
    assert not raw, "\n".join(raw)


def test_the_checks_catch_what_they_are_for(document):
    """The walkers themselves: an untyped body and a dict parameter are seen."""
    assert not _typed(document, {"type": "object", "additionalProperties": True}, json=True)
    assert not _typed(document, {}, json=True)
    assert not _typed(document, {"type": "array", "items": {"type": "object", "additionalProperties": True}}, json=True)
    assert _typed(document, {"type": "string", "format": "binary"}, json=False)
    assert _typed(document, {"$ref": "#/components/schemas/Problem"}, json=True)
    assert _is_dict(dict) and _is_dict(typing.Annotated[dict, "body"]) and _is_dict(dict[str, Any] | None)
    assert not _is_dict(Settings)

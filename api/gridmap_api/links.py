"""The API's addresses of things gridmap names by id or code: gridmap returns codes and ids, the API composes
the links its answers carry."""

from __future__ import annotations

from typing import Any

API = "/api/v1"


def area_url(code: str) -> str:
    """The address of an area (its boundary, chain and people)."""
    return f"{API}/areas/{code}"


def evidence_links(evidence: dict[str, Any] | None) -> dict[str, Any] | None:
    """A bounce's evidence with the link to the boundary of its grid (`boundary`, null without a grid)."""
    if not isinstance(evidence, dict):
        return evidence
    code = evidence.get("grid_code")
    return {**evidence, "boundary": area_url(code) if code else None}


def case_links(item: dict[str, Any]) -> dict[str, Any]:
    """A case answer (an item, or one case with its `history`) with the links of its bounces' evidence."""
    bounce = item.get("last_bounce")
    if isinstance(bounce, dict) and "evidence" in bounce:
        item["last_bounce"] = {**bounce, "evidence": evidence_links(bounce["evidence"])}
    history = item.get("history")
    if isinstance(history, list):
        item["history"] = [
            {**e, "detail": {**e["detail"], "evidence": evidence_links(e["detail"]["evidence"])}}
            if isinstance(e.get("detail"), dict) and "evidence" in e["detail"]
            else e
            for e in history
        ]
    return item

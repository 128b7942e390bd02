"""GeoJSON (RFC 7946) views of areas and cases: longitude/latitude, coordinates rounded for transport."""

from __future__ import annotations

import json
from typing import Any

import shapely

from gridmap.boundaries.areas import geometry_of
from gridmap.cases.queries import case_summary
from gridmap.store.tables import Area, Case


def area_properties(area: Area, parent_code: str | None) -> dict[str, Any]:
    """The properties every area feature carries."""
    return {
        "code": area.code,
        "name": area.name,
        "level": area.level,
        "parent_code": parent_code,
        "households": area.households,
        "population": area.population,
        "area_km2": round(area.area_m2 / 1e6, 4),
        "generation_id": area.generation_id,
    }


def area_feature(area: Area, parent_code: str | None, precision: int = 6, **extra: Any) -> dict[str, Any]:
    """One area as a GeoJSON Feature, `extra` merged into its properties."""
    geometry = json.loads(shapely.to_geojson(geometry_of(area, precision)))
    return {
        "type": "Feature",
        "id": area.code,
        "geometry": geometry,
        "properties": {**area_properties(area, parent_code), **extra},
    }


def feature_collection(features: list[dict[str, Any]], **members: Any) -> dict[str, Any]:
    """A FeatureCollection with optional foreign members (numberMatched, …)."""
    return {"type": "FeatureCollection", "features": features, **members}


def case_feature(case: Case) -> dict[str, Any]:
    """One case as a GeoJSON point Feature (personal data masked)."""
    geometry = (
        {"type": "Point", "coordinates": [round(case.lon, 6), round(case.lat, 6)]}
        if case.lon is not None and case.lat is not None
        else None
    )
    return {"type": "Feature", "id": case.id, "geometry": geometry, "properties": case_summary(case)}

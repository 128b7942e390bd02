"""Boundaries out to GIS tools (issue 13 §7): any generation, one level or all, as GeoJSON, GeoPackage, a zipped
Shapefile or KML, in WGS84 (EPSG:4326, longitude/latitude) with the stored coordinates unchanged.

Every feature carries the same fields in every format: `code`, `name`, `level`, `parent` (the parent's code),
`households`, `population`, `area_m2` — no personal data (no staff, no phones). All levels (the default) go
out as one layer per level (`district`, `subdistrict`, …): GeoPackage layers, one Shapefile per level in the zip,
one KML folder per level; GeoJSON, which has no layers, holds them all in one collection, the `level` field
telling them apart.

GeoJSON is written here, with json and shapely only. The other formats are written by GDAL (pyogrio) from that
GeoJSON in a separate interpreter that never loads SpatiaLite, with only the one driver the format needs
registered: in a process that loaded SpatiaLite, GDAL crashes writing a GeoPackage (see `gridmap.io.gpkg`) and
pyproj, imported after it, crashes the process when it exits. Shapefiles are written with `ENCODING=UTF-8`, so
the zip holds a `.cpg` saying UTF-8 and Chinese names survive in QGIS and ArcGIS.

    python -m gridmap.boundaries.export write FORMAT IN.geojson OUT    (the writer process)
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from gridmap.errors import InvalidInput

LEVELS = ("district", "subdistrict", "community", "grid", "microgrid")
FIELDS = ("code", "name", "level", "parent", "households", "population", "area_m2")


@dataclass(frozen=True)
class Format:
    key: str
    suffix: str  # of the file handed out
    media_type: str
    driver: str | None  # GDAL's; None when written here
    label: str


FORMATS: dict[str, Format] = {
    "geojson": Format("geojson", ".geojson", "application/geo+json", None, "GeoJSON"),
    "gpkg": Format("gpkg", ".gpkg", "application/geopackage+sqlite3", "GPKG", "GeoPackage"),
    "shp": Format("shp", ".zip", "application/zip", "ESRI Shapefile", "Shapefile (zip)"),
    "kml": Format("kml", ".kml", "application/vnd.google-earth.kml+xml", "LIBKML", "KML"),
}
ALIASES = {"json": "geojson", "geopackage": "gpkg", "shapefile": "shp", "zip": "shp"}
SUFFIXES = {".geojson": "geojson", ".json": "geojson", ".gpkg": "gpkg", ".zip": "shp", ".kml": "kml"}


def check_format(name: str | None) -> Format:
    """The format named (geojson, gpkg, shp, kml, or an alias); the error lists the accepted ones."""
    key = (name or "geojson").strip().lower()
    key = ALIASES.get(key, key)
    if key not in FORMATS:
        raise _invalid(
            f"format {str(name)[:20]!r} is not accepted; accepted: {', '.join(FORMATS)}",
            "format",
            f"格式：不支持 {str(name)[:20]!r}，可选 {', '.join(FORMATS)}。",
        )
    return FORMATS[key]


def format_for_path(path: str | Path, name: str | None = None) -> Format:
    """The format given, or else the one the output file's suffix names (.geojson .json .gpkg .zip .shp .kml)."""
    if name:
        return check_format(name)
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIXES:
        raise _invalid(
            f"cannot tell the format from the suffix {suffix or '(none)'!r}; name it with --format, "
            f"or use one of {', '.join(SUFFIXES)}",
            "format",
            f"格式：无法从扩展名 {suffix or '（无）'} 判断格式，请用 --format 指定。",
        )
    return FORMATS[SUFFIXES[suffix]]


def check_levels(level: str | None) -> tuple[str, ...]:
    """One level, or all of them for None / 'all'."""
    if level is None or level == "all":
        return LEVELS
    if level not in LEVELS:
        raise _invalid(
            f"level {str(level)[:20]!r} is not a level; accepted: {', '.join(LEVELS)}, all",
            "level",
            f"层级：{str(level)[:20]!r} 不是层级，可选 {', '.join(LEVELS)} 或 all。",
        )
    return (level,)


def _invalid(message: str, field: str, zh: str) -> InvalidInput:
    from gridmap.errors import InvalidInput

    return InvalidInput(message, field=field, zh=zh)


def load_layers(
    session: Session, generation_id: int, level: str | None = None, visible: Callable[[str], bool] | None = None
) -> dict[str, list[dict[str, Any]]]:
    """The areas of a generation by level: {level: [{FIELDS…, "geometry": shapely}]}, ordered by code, only those
    whose code `visible(code)` accepts when it is given (the caller's areas policy). Levels without areas are
    left out. `NotFound` for a generation nobody has."""
    import sqlalchemy as sa
    from geoalchemy2.shape import to_shape
    from sqlalchemy.orm import aliased

    from gridmap.boundaries.generations import get_generation
    from gridmap.store.tables import Area

    levels = check_levels(level)
    get_generation(session, generation_id)
    parent = aliased(Area)
    rows = session.execute(
        sa.select(
            Area.code, Area.name, Area.level, parent.code, Area.households, Area.population, Area.area_m2, Area.geom
        )
        .outerjoin(parent, Area.parent_id == parent.id)
        .where(Area.generation_id == generation_id, Area.level.in_(levels))
        .order_by(Area.code)
    ).all()
    layers: dict[str, list[dict[str, Any]]] = {}
    for code, name, lvl, parent_code, households, population, area_m2, geom in rows:
        if visible is not None and not visible(code):
            continue
        layers.setdefault(lvl, []).append(
            {
                "code": code,
                "name": name,
                "level": lvl,
                "parent": parent_code,
                "households": int(households or 0),
                "population": int(population or 0),
                "area_m2": round(float(area_m2 or 0.0), 2),
                "geometry": to_shape(geom),
            }
        )
    return {lvl: layers[lvl] for lvl in levels if lvl in layers}


def export(
    session: Session,
    generation_id: int,
    out: str | Path,
    *,
    level: str | None = None,
    fmt: str | Format | None = None,
    visible: Callable[[str], bool] | None = None,
) -> dict[str, Any]:
    """Write a generation's areas (one level, or all; those `visible(code)` accepts when given) to `out`; returns
    a summary: generation, format, file, features per level."""
    fmt = fmt if isinstance(fmt, Format) else format_for_path(out, fmt)
    level = None if level == "all" else level
    layers = load_layers(session, generation_id, level, visible)
    if not layers:
        raise _invalid(
            f"generation {generation_id} has no areas{' at level ' + level if level else ''}",
            "level",
            f"层级：第 {generation_id} 版没有{'该层级的' if level else ''}区域。",
        )
    write_layers(layers, fmt, Path(out), title=level or f"gridmap generation {generation_id}")
    return {
        "generation_id": generation_id,
        "format": fmt.key,
        "file": str(out),
        "features": {lvl: len(rows) for lvl, rows in layers.items()},
    }


def write_layers(layers: dict[str, list[dict[str, Any]]], fmt: Format, out: Path, *, title: str = "gridmap") -> None:
    """Write {level: rows} in `fmt` to `out` (replacing it). GeoJSON is written here; for the other formats the
    GeoJSON goes to the writer process (this process may have loaded SpatiaLite, and neither GDAL's GeoPackage
    driver nor pyproj survive meeting it: a crash on writing, or at exit)."""
    if fmt.key == "geojson":
        _write_geojson(layers, out, title)
        return
    with tempfile.TemporaryDirectory(prefix="gridmap-export-") as tmp:
        src = Path(tmp) / "in.geojson"
        _write_geojson(layers, src, title)
        if fmt.key == "shp":
            shp_dir = Path(tmp) / "shp"
            shp_dir.mkdir()
            _run_writer(fmt, src, shp_dir)
            with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
                for path in sorted(shp_dir.iterdir()):
                    archive.write(path, path.name)
        else:
            target = Path(tmp) / f"out{fmt.suffix}"
            _run_writer(fmt, src, target)
            shutil.copyfile(target, out)


def _write_geojson(layers: dict[str, list[dict[str, Any]]], out: Path, title: str) -> None:
    """RFC 7946 GeoJSON: WGS84 longitude/latitude (no `crs` member), features of every level in one collection."""
    import shapely

    with open(out, "w", encoding="utf-8") as f:
        f.write('{"type": "FeatureCollection", "name": ' + json.dumps(title) + ', "features": [')
        first = True
        for rows in layers.values():
            for r in rows:
                feature = {"type": "Feature", "id": r["code"], "properties": {k: r[k] for k in FIELDS}}
                body = json.dumps(feature, ensure_ascii=False)[:-1]
                f.write(("" if first else ",\n") + body + ', "geometry": ' + shapely.to_geojson(r["geometry"]) + "}")
                first = False
        f.write("]}\n")


def _run_writer(fmt: Format, src: Path, dst: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "gridmap.boundaries.export", "write", fmt.key, str(src), str(dst)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1][:300]
        raise RuntimeError(f"writing {fmt.label} failed: {last}")


# -- the writer process (never imports gridmap.store.engine, so SpatiaLite is never loaded here) -----------------------


def _frames(src: str) -> dict[str, Any]:
    """{level: GeoDataFrame} from the GeoJSON this module wrote (read with json and shapely, not GDAL)."""
    import geopandas as gpd
    import shapely

    with open(src, encoding="utf-8") as f:
        features = json.load(f)["features"]
    by_level: dict[str, list[dict[str, Any]]] = {}
    for feature in features:
        by_level.setdefault(feature["properties"]["level"], []).append(feature)
    frames = {}
    for lvl in LEVELS:
        rows = by_level.get(lvl)
        if rows:
            frames[lvl] = gpd.GeoDataFrame(
                [r["properties"] for r in rows],
                crs="EPSG:4326",
                geometry=[shapely.from_geojson(json.dumps(r["geometry"])) for r in rows],
            )
    return frames


def _writer_main(fmt_key: str, src: str, dst: str) -> int:
    fmt = FORMATS[fmt_key]
    from gridmap.io.gpkg import only_driver

    assert fmt.driver is not None  # only the GDAL formats are written by this process
    only_driver(fmt.driver)
    import pyogrio

    frames = _frames(src)
    if fmt.key == "shp":
        for lvl, frame in frames.items():
            pyogrio.write_dataframe(
                frame, str(Path(dst) / f"{lvl}.shp"), driver=fmt.driver, layer=lvl, layer_options={"ENCODING": "UTF-8"}
            )
        return 0
    for i, (lvl, frame) in enumerate(frames.items()):
        if fmt.key == "kml":  # KML has 32-bit integers only (the name goes into each placemark's <name>)
            frame = frame.astype({"households": "int32", "population": "int32"})
        pyogrio.write_dataframe(frame, dst, driver=fmt.driver, layer=lvl, append=i > 0)
    return 0


def main(argv: list[str]) -> int:
    if len(argv) != 4 or argv[0] != "write" or argv[1] not in FORMATS or FORMATS[argv[1]].driver is None:
        raise SystemExit("usage: python -m gridmap.boundaries.export write gpkg|shp|kml IN.geojson OUT")
    for path in argv[2:]:
        if path.lower().startswith("/vsi") or "://" in path or not Path(path).is_absolute():
            raise SystemExit(f"{path[:80]!r}: a local absolute path is required")
    return _writer_main(argv[1], argv[2], argv[3])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Locating many records at once: DataFrames and GeoDataFrames in and out, and the files planners and the 12345
hotline exchange (CSV, XLSX, GeoPackage, Parquet).

Input rows carry `lon`/`lat` (in any coordinate system gridmap knows, `crs`), or a geometry (GeoDataFrame), or
an `address`. Output adds, per row: the chain codes (`district_code` … `microgrid_code`), `grid_name`,
`branch`, `method` (coordinates, address, nearest or none), `flags` (`;`-separated, as in single lookups),
`candidates` (other grids on a shared boundary) and, for addresses, `address_confidence` and the matched place.
Rows that cannot be located get `method` none and a flag that says why (`invalid_coordinate`,
`outside_service_area`, `address_not_matched`, `address_too_long` over 300 characters); a batch never fails because
of one bad row.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import shapely
from sqlalchemy.orm import Session

from gridmap import crs as gcrs
from gridmap.areas import people_directory
from gridmap.errors import InvalidInput
from gridmap.textcheck import MAX_ADDRESS
from gridmap.lookup import FLAG_NEAR_BOUNDARY, FLAG_ON_BOUNDARY, FLAG_OUTSIDE, AreaIndex, metres_per_degree

LEVELS = ("district", "subdistrict", "community", "grid", "microgrid")
OUT_COLUMNS = [f"{lv}_code" for lv in LEVELS] + ["grid_name", "branch", "method", "flags", "candidates"]
FORMATS = {".csv": "csv", ".xlsx": "xlsx", ".gpkg": "gpkg", ".geojson": "geojson", ".parquet": "parquet",
           ".geoparquet": "parquet"}
GDAL_DRIVERS = {"gpkg": "GPKG", "geojson": "GeoJSON"}  # the only drivers GDAL may use, one per format
CONTENT = {"csv": "CSV text", "xlsx": "an XLSX workbook", "gpkg": "a GeoPackage", "geojson": "GeoJSON",
           "parquet": "(Geo)Parquet", "xml": "XML (such as a GDAL VRT, GML or KML)", "zip": "a zip archive",
           "sqlite": "an SQLite database that is not a GeoPackage", "binary": "binary data"}
MAX_FILE_ROWS = 5_000_000
CHUNK = 200_000


def _chain_table(index: AreaIndex) -> dict[int, dict]:
    table = {}
    for i, leaf in enumerate(index.leaves):
        chain = index.chain_of(leaf.code)
        row = {f"{a.level}_code": a.code for a in chain}
        grid = next((a for a in chain if a.level == "grid"), None)
        row["grid_name"] = grid.name if grid else None
        table[i] = row
    return table


def locate_points(index: AreaIndex, lon, lat, *, near_m: float = 0.0, progress=None) -> pd.DataFrame:
    """Leaf position, flags and candidates for arrays of WGS84 points, exactly as single lookups decide them."""
    lon = np.asarray(lon, dtype=np.float64)
    lat = np.asarray(lat, dtype=np.float64)
    n = len(lon)
    leaf = np.empty(n, np.int64)
    for start in range(0, n, CHUNK):
        stop = min(start + CHUNK, n)
        leaf[start:stop] = index.locate_many(lon[start:stop], lat[start:stop])
        if progress is not None:
            progress.update(stop - start)
    flags = [[] for _ in range(n)]
    candidates = [""] * n
    for i in np.flatnonzero(leaf < 0):
        flags[i].append(FLAG_OUTSIDE)
    # ties: a point on a shared edge is within 1e-9° of it, so only points that close can have several leaves
    inside = np.flatnonzero(leaf >= 0)
    if len(inside):
        boundaries = shapely.boundary(index.leaf_geoms[leaf[inside]])
        d_deg = shapely.distance(boundaries, shapely.points(lon[inside], lat[inside]))
        kx = np.array([metres_per_degree(v)[0] for v in lat[inside]]) if near_m > 0 else None
        for j in np.flatnonzero(d_deg <= 1e-8):
            i = inside[j]
            codes = index.leaf_codes_at(lon[i], lat[i])
            if len(codes) > 1:
                flags[i].append(FLAG_ON_BOUNDARY)
                candidates[i] = ";".join(codes[1:])
        if near_m > 0:
            # a point farther from its own leaf's boundary than near_m (in the shorter metre-per-degree) is not near
            close = np.flatnonzero(d_deg * np.minimum(kx, 110_574.0) <= near_m)
            for j in close:
                i = inside[j]
                own = {index.leaves[leaf[i]].code, *candidates[i].split(";")}
                near = [c for c, _ in index.leaves_within(lon[i], lat[i], near_m) if c not in own]
                if near:
                    flags[i].append(FLAG_NEAR_BOUNDARY)
                    candidates[i] = ";".join(filter(None, [candidates[i], *near]))
    return pd.DataFrame({"leaf": leaf, "flags": [";".join(f) for f in flags], "candidates": candidates})


def locate_frame(frame: pd.DataFrame, index: AreaIndex, *, crs: str | None = "wgs84", session: Session | None = None,
                 gazetteer=None, near_m: float = 0.0, service_margin_m: float = 30_000.0, lon: str = "lon",
                 lat: str = "lat", address: str = "address", progress=None, on=None) -> pd.DataFrame:
    """A copy of `frame` with the located columns added (see the module doc). A GeoDataFrame is located by its
    geometry (points; other shapes by a point on their surface), converted from its own CRS."""
    out = frame.copy()
    n = len(out)
    x = np.full(n, np.nan)
    y = np.full(n, np.nan)
    system = gcrs.parse_crs(crs)
    if hasattr(frame, "geometry") and getattr(frame, "geometry", None) is not None and hasattr(frame, "crs") \
            and frame.geometry.name in frame.columns:
        geoms = frame.geometry.values
        pts = shapely.point_on_surface(np.asarray(geoms, dtype=object))
        x, y = shapely.get_x(pts), shapely.get_y(pts)
        if frame.crs is not None and system.name == "wgs84":
            system = gcrs.CoordinateSystem(f"EPSG:{frame.crs.to_epsg()}", frame.crs.to_epsg())
            if system.epsg == 4326:
                system = gcrs.CoordinateSystem("wgs84", 4326)
    elif lon in frame.columns and lat in frame.columns:
        x = pd.to_numeric(frame[lon], errors="coerce").to_numpy(float)
        y = pd.to_numeric(frame[lat], errors="coerce").to_numpy(float)
    elif address not in frame.columns:
        raise InvalidInput(f"columns: need '{lon}' and '{lat}', a geometry, or '{address}'; found "
                           f"{', '.join(map(str, frame.columns))}", field="columns",
                           zh=f"列：须有“{lon}”和“{lat}”列、几何列或“{address}”列；文件中的列："
                              f"{', '.join(map(str, frame.columns))}。")
    has_xy = np.isfinite(x) & np.isfinite(y)
    given = np.zeros(n, bool)  # a coordinate was written but is not a number
    for col in (lon, lat):
        if col in frame.columns and not has_xy.all():
            raw = frame[col].astype("string").str.strip().fillna("")
            given |= (raw != "").to_numpy() & ~has_xy
    wlon = np.full(n, np.nan)
    wlat = np.full(n, np.nan)
    if has_xy.any():
        with np.errstate(all="ignore"):
            cx, cy = gcrs.to_wgs84(x[has_xy], y[has_xy], system)
        wlon[has_xy], wlat[has_xy] = cx, cy
    bad = has_xy & ~((np.abs(wlat) <= 90) & (np.abs(wlon) <= 180) & np.isfinite(wlon) & np.isfinite(wlat))
    far = np.zeros(n, bool)
    if index.bounds is not None:
        minx, miny, maxx, maxy = index.bounds
        kx = 111_320 * np.cos(np.radians(np.clip(np.nan_to_num(wlat), -89, 89)))
        dx = np.maximum.reduce([minx - wlon, np.zeros(n), wlon - maxx]) * kx
        dy = np.maximum.reduce([miny - wlat, np.zeros(n), wlat - maxy]) * 110_574
        far = has_xy & ~bad & (np.hypot(dx, dy) > service_margin_m)
    method = np.where(has_xy, "coordinates", "none").astype(object)
    extra_flags = [[] for _ in range(n)]
    for i in np.flatnonzero(bad | given):
        extra_flags[i].append("invalid_coordinate")
    for i in np.flatnonzero(far):
        extra_flags[i].append("outside_service_area")
    usable = has_xy & ~bad & ~far
    method[has_xy & ~usable] = "none"
    confidence = np.full(n, np.nan)
    matched = [None] * n
    if address in frame.columns:
        texts_all = frame[address].astype("string").fillna("").str.strip().to_numpy()
        todo = np.flatnonzero(~has_xy & (texts_all != ""))
        if len(todo):
            if gazetteer is None:
                if session is None:
                    raise InvalidInput("address: locating addresses needs a database session", field="address",
                                       zh="地址：按地址定位需要连接数据库。")
                from gridmap.gazetteer import gazetteer_for

                gazetteer = gazetteer_for(session)
            texts = frame[address].astype("string").fillna("").to_numpy()
            for i in todo:
                if len(texts[i]) > MAX_ADDRESS:  # never handed to the gazetteer
                    extra_flags[i].append("address_too_long")
                    continue
                m = gazetteer.match(str(texts[i]))
                confidence[i] = m.confidence
                if m.place is None or m.level != "place":
                    extra_flags[i].append("address_not_matched" if m.place is None else "address_community_only")
                    if m.place is not None:
                        matched[i] = m.place["name"]
                    continue
                matched[i] = m.place["name"]
                wlon[i], wlat[i] = m.place["lon"], m.place["lat"]
                usable[i] = True
                method[i] = "address"
        out["address_confidence"] = confidence
        out["address_place"] = matched
    for i in np.flatnonzero(~has_xy & ~given & ~usable):
        if not extra_flags[i]:
            extra_flags[i].append("no_location_given")
    located = locate_points(index, wlon[usable], wlat[usable], near_m=near_m, progress=progress)
    chains = _chain_table(index)
    cols = {c: np.full(n, None, dtype=object) for c in OUT_COLUMNS}
    idx = np.flatnonzero(usable)
    leaf = located["leaf"].to_numpy()
    for j, i in enumerate(idx):
        if leaf[j] >= 0:
            for key, value in chains[int(leaf[j])].items():
                cols[key][i] = value
    flags = [";".join(f) for f in extra_flags]
    for j, i in enumerate(idx):
        flags[i] = ";".join(filter(None, [located["flags"].iat[j], flags[i]]))
        cols["candidates"][i] = located["candidates"].iat[j] or None
    cols["flags"] = np.array(flags, dtype=object)
    cols["method"] = method
    if session is not None:
        directory = people_directory(session, on)  # two queries, not two per grid
        names = {code: entry[0]["name"] for code, entry in directory.items() if entry[0]}
        cols["branch"] = np.array([names.get(c) if c else None for c in cols["grid_code"]], dtype=object)
    out["lon_wgs84"] = np.where(usable, wlon, np.nan)
    out["lat_wgs84"] = np.where(usable, wlat, np.nan)
    for c in OUT_COLUMNS:
        out[c] = cols[c]
    return out


def file_format(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise InvalidInput(f"file: {Path(path).name!r} has no supported extension; accepted: "
                           f"{', '.join(sorted(FORMATS))}", field="file",
                           zh=f"文件：{Path(path).name!r} 的扩展名不受支持；可用：{', '.join(sorted(FORMATS))}。")
    return FORMATS[suffix]


def sniff(path: str | Path) -> str:
    """What a file holds, decided from its first bytes (never from its name): gpkg (SQLite with the GeoPackage
    application id), parquet (PAR1), xlsx (a zip with a workbook), geojson (text starting with `{`), xml, zip,
    sqlite, binary, or csv (other text). A path GDAL would read as a network or virtual file (/vsi…, URLs) or
    anything but a regular file is refused."""
    text = str(path)
    name = Path(text).name
    if text.lower().startswith(("/vsi", "vsi")) or "://" in text or text.lower().startswith(
            ("http:", "https:", "ftp:", "file:")) or "/vsi" in text.lower():
        raise InvalidInput(f"file: {text[:80]!r} is a network or virtual path; give a local file", field="file",
                           zh=f"文件：{text[:80]!r} 是网络路径或虚拟路径，请提供本地文件。")
    real = Path(text).resolve()
    if not real.is_file():
        raise InvalidInput(f"file: {name!r} is not a regular file", field="file", zh=f"文件：{name!r} 不是普通文件。")
    with open(real, "rb") as f:
        head = f.read(4096)
    found = content_of(head)
    if found == "zip":
        import zipfile

        from gridmap import tabular

        try:
            with zipfile.ZipFile(real) as archive:
                tabular.check_archive(archive, repr(name))
                names = set(archive.namelist())
        except zipfile.BadZipFile:
            return "binary"
        return "xlsx" if {"[Content_Types].xml", "xl/workbook.xml"} <= names else "zip"
    return found


def content_of(head: bytes) -> str:
    """What a file's first bytes say it holds: gpkg, sqlite, parquet, zip (also an empty archive), binary, geojson
    (text starting with `{`), xml (with `<`) or csv (other text). One sniffer for every reader of user files."""
    if head.startswith(b"SQLite format 3\x00"):
        return "gpkg" if head[68:72] in (b"GPKG", b"GP10", b"GP11") else "sqlite"
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if b"\x00" in head:
        return "binary"
    start = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    if start.startswith(b"{"):
        return "geojson"
    if start.startswith(b"<"):
        return "xml"
    return "csv"


def read_table(path: str | Path) -> pd.DataFrame:
    """Read CSV (UTF-8, or GB18030 as Excel in China writes it), XLSX, GeoPackage, GeoJSON or (Geo)Parquet. The
    content must be what the name says (`sniff`): a GDAL VRT, GML or KML named .gpkg or .geojson is refused
    before GDAL sees it, and GDAL reads with that one format's driver only (`gridmap._gpkgio`)."""
    kind = file_format(path)
    found = sniff(path)
    if found != kind:
        raise InvalidInput(f"file: {Path(path).name!r} is named {Path(path).suffix.lower()} but holds "
                           f"{CONTENT[found]}; accepted: CSV, XLSX, GeoPackage, GeoJSON, (Geo)Parquet "
                           "(unsupported_format)", field="file",
                           zh=f"文件：{Path(path).name!r} 的扩展名是 {Path(path).suffix.lower()}，内容却是 "
                              f"{found.upper()}；可用：CSV、XLSX、GeoPackage、GeoJSON、(Geo)Parquet。")
    path = Path(path).resolve()
    if kind == "csv":
        try:
            return pd.read_csv(path, dtype={"address": "string"}, encoding="utf-8-sig")
        except UnicodeDecodeError:
            return pd.read_csv(path, dtype={"address": "string"}, encoding="gb18030")
    if kind == "xlsx":
        return _read_xlsx(path)
    if kind in GDAL_DRIVERS:
        from gridmap import _gpkgio

        return _gpkgio.read(path, GDAL_DRIVERS[kind])
    import pyarrow.parquet as pq

    meta = pq.read_schema(path).metadata or {}
    if b"geo" in meta:
        import geopandas as gpd

        return gpd.read_parquet(path)
    return pd.read_parquet(path)


def _read_xlsx(path: Path) -> pd.DataFrame:
    """The first sheet, streamed (`gridmap.tabular`); a cell over 4,000 characters refuses the file, naming it."""
    from gridmap import tabular

    headings, rows = tabular.read_xlsx_rows(path.read_bytes(), label=repr(path.name), max_rows=MAX_FILE_ROWS)
    for number, values in rows:
        for heading, value in zip(headings, values):
            if isinstance(value, tabular.TooLong):
                raise InvalidInput(f"file: {path.name!r} row {number} column {str(heading)[:40]!r} holds "
                                   f"{value.length:,} characters; at most {tabular.MAX_CELL:,} per cell", field="file",
                                   zh=f"文件：{path.name!r} 第 {number} 行 {str(heading)[:40]!r} 列有 "
                                      f"{value.length:,} 个字符，每格最多 {tabular.MAX_CELL:,} 个。")
    names = [str(h) if h is not None else f"column {j}" for j, h in enumerate(headings, start=1)]
    return pd.DataFrame([values for _, values in rows], columns=names, dtype=object).infer_objects()


def write_table(frame: pd.DataFrame, path: str | Path) -> None:
    """Write CSV or XLSX through `gridmap.tabular` (text that looks like a formula stays text), or GeoPackage,
    GeoJSON or Parquet."""
    from gridmap import tabular

    kind = file_format(path)
    if kind == "csv":
        tabular.write_csv(frame, path)
    elif kind == "xlsx":
        Path(path).write_bytes(tabular.xlsx_bytes(frame, "Sheet1"))
    elif kind in GDAL_DRIVERS:
        import geopandas as gpd

        if not isinstance(frame, gpd.GeoDataFrame):
            frame = gpd.GeoDataFrame(frame, geometry=gpd.points_from_xy(frame["lon_wgs84"], frame["lat_wgs84"]),
                                     crs=4326)
        from gridmap import _gpkgio

        _gpkgio.write(frame, path, GDAL_DRIVERS[kind])
    else:
        frame.to_parquet(path, index=False)


def locate_file(source: str | Path, target: str | Path, index: AreaIndex, *, session: Session | None = None,
                crs: str | None = "wgs84", near_m: float = 0.0, show_progress: bool | None = None,
                on=None) -> dict:
    """Read `source`, locate every row, write `target`; returns counts by method and flag."""
    file_format(target)
    frame = read_table(source)
    progress = None
    if show_progress is None:
        show_progress = sys.stderr.isatty()
    if show_progress:
        from tqdm import tqdm

        progress = tqdm(total=len(frame), unit="pt", desc="locating", file=sys.stderr)
    try:
        out = locate_frame(frame, index, crs=crs, session=session, near_m=near_m, progress=progress, on=on)
    finally:
        if progress is not None:
            progress.close()
    write_table(out, target)
    flags = pd.Series([f for fs in out["flags"] for f in fs.split(";") if f]).value_counts().to_dict()
    return {"rows": len(out), "method": out["method"].value_counts().to_dict(), "flags": flags,
            "located": int(out["grid_code"].notna().sum()), "written": str(target)}


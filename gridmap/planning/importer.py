"""Importing a city's own boundaries (the adoption path): a file of grids or micro-grids becomes a draft generation.

Formats, decided by the file's name and confirmed by its content (a file whose content is not what its name says is
refused before GDAL sees it): GeoJSON (.geojson, .json), GeoPackage (.gpkg), Shapefile (.zip holding .shp, .shx,
.dbf and optionally .prj and .cpg; any code page, GBK included, from the .cpg or `encoding`), KML (.kml) and KMZ
(.kmz), and CSV with a WKT column (.csv, UTF-8 or GB18030, or `encoding`).

GDAL (through pyogrio) reads in a separate interpreter (`gridmap.planning._import_reader`) that deregisters every
driver but
the one for the format (`gridmap.io.gpkg.only_driver`), under memory and CPU limits, and is given local paths only:
a GDAL VRT named .geojson cannot make GDAL read anything else. Archives are checked before they
are unpacked (member names, sizes, ratio) and unpacked by gridmap itself with a bound on every member; sizes are
checked before anything is parsed.

The coordinate system is the file's unless `crs` is given; `crs` = gcj02 or bd09 overrides a file that says
EPSG:4326 but holds AMap or Baidu numbers. Columns are found by their usual Chinese names (网格编码/网格代码/编码,
网格名称/名称, 所属街道, 所属社区, 所属网格, 户数, 人口) or named explicitly.

A file of leaves is enough: the level of each feature comes from its DB11 code's length (`gridmap.boundaries.codes`),
the
leaves are noded into an exact coverage (`gridmap.geo.coverage.node_coverage`) and every parent is the exact union of
its children by code prefix, named from the columns 所属街道/所属社区/所属网格, from a feature of the file with the
parent's code, or — the district — from the dataset of administrative divisions (`gridmap.boundaries.divisions`).
Households
and population come from columns, or are summed from the buildings (places) inside each leaf.

The import makes a draft: a copy of the active generation with the imported districts' areas replaced (or added).
On an empty database the caller may activate it at once (`activate`). Every refusal is an `ImportRefused` naming the
file, the feature (1-based index and code) and the field; nothing is stored then.
"""

from __future__ import annotations

import codecs
import datetime as dt
import json
import re
import subprocess
import sys
import tempfile
import unicodedata
import zipfile
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from gridmap.boundaries.codes import level_of, parent_code
from gridmap.errors import Conflict, InvalidInput, UnknownCRS
from gridmap.geo import crs as gcrs
from gridmap.locating.batch import content_of

if TYPE_CHECKING:
    from pyproj import CRS, Transformer
    from sqlalchemy.orm import Session

LEVELS = ("district", "subdistrict", "community", "grid", "microgrid")
LEVEL_NAMES_ZH = {"district": "区", "subdistrict": "街道", "community": "社区", "grid": "网格", "microgrid": "微网格"}
FORMATS = {
    ".geojson": "geojson",
    ".json": "geojson",
    ".gpkg": "gpkg",
    ".zip": "shapefile",
    ".kml": "kml",
    ".kmz": "kmz",
    ".csv": "csv",
}
ACCEPTED = ".geojson .json .gpkg .zip (Shapefile) .kml .kmz .csv (WKT)"
DRIVERS = {"geojson": "GeoJSON", "gpkg": "GPKG", "shapefile": "ESRI Shapefile", "kml": "LIBKML"}
CONTENT_NAMES = {
    "geojson": "GeoJSON",
    "gpkg": "a GeoPackage",
    "zip": "a zip archive",
    "xml": "XML",
    "csv": "text",
    "sqlite": "an SQLite database that is not a GeoPackage",
    "binary": "binary data",
    "parquet": "a Parquet file",
}
EXPECTED_CONTENT = {"geojson": "geojson", "gpkg": "gpkg", "shapefile": "zip", "kml": "xml", "kmz": "zip", "csv": "csv"}
SHAPEFILE_PARTS = (".shp", ".shx", ".dbf", ".prj", ".cpg")

CODE_FIELDS = ("网格编码", "网格代码", "微网格编码", "编码", "代码", "区划代码", "code", "grid_code", "gridcode")
NAME_FIELDS = ("网格名称", "微网格名称", "名称", "name", "grid_name")
PARENT_FIELDS = {
    "subdistrict": ("所属街道", "街道", "街道名称", "subdistrict"),
    "community": ("所属社区", "社区", "社区名称", "community"),
    "grid": ("所属网格", "网格", "grid"),
}
HOUSEHOLD_FIELDS = ("户数", "总户数", "households")
POPULATION_FIELDS = ("人口", "人口数", "总人口", "population")
WKT_FIELDS = ("wkt", "geometry", "geom", "the_geom", "shape", "几何", "图形")
GRID_DEG = 1e-7  # the fixed-precision grid the leaves are noded on (about 1 cm)


@dataclass(frozen=True)
class Limits:
    """What an import accepts (checked before parsing, where it can be)."""

    max_bytes: int = 50 * 2**20  # the file as given
    max_vertices: int = 100_000  # per feature
    max_features: int = 100_000
    max_unpacked: int = 200 * 2**20  # an archive, all members unpacked
    max_ratio: float = 100.0  # unpacked / packed, in all and per member over 1 MB
    max_seconds: int = 300  # the reader process's CPU time

    def __post_init__(self) -> None:
        for name in ("max_bytes", "max_vertices", "max_features", "max_unpacked", "max_seconds"):
            if int(getattr(self, name)) < 1:
                raise InvalidInput(f"{name} must be a positive integer", field=name, zh=f"{name}：应为正整数。")


LIMIT_ENV = {"max_bytes": "GRIDMAP_IMPORT_MAX_BYTES", "max_vertices": "GRIDMAP_IMPORT_MAX_VERTICES"}


@dataclass
class Options:
    """The import's options, as `gridmap boundaries import` and the API's generation import take them."""

    crs: str | None = None
    layer: str | None = None
    code_field: str | None = None
    name_field: str | None = None
    level: str | None = None
    name: str | None = None  # the draft's name
    activate: dt.date | None = None  # make the draft the active generation on this day
    encoding: str | None = None


class ImportRefused(InvalidInput):
    """A file that cannot be imported; the message names the file, the feature and the field."""

    def __init__(self, file: str, field: str, zh: str, en: str, *, feature: int | None = None, code: str | None = None):
        where_zh = f"文件 {file}"
        where_en = f"file {file}"
        if feature is not None:
            where_zh += f" 第 {feature} 个要素"
            where_en += f", feature {feature}"
        if code:
            code = "".join(c for c in str(code)[:24] if unicodedata.category(c)[0] != "C")  # no control or bidi
            where_zh += f"（编码 {code}）"
            where_en += f" (code {code})"
        super().__init__(f"{where_en}, field {field}: {en}", field=field, zh=f"{where_zh} 字段 {field}：{zh}")
        self.file, self.feature, self.code = file, feature, code


@dataclass
class Feature:
    index: int  # 1-based, in the file's order
    code: str
    level: str
    geom: BaseGeometry  # WGS84
    name: str | None
    households: int | None
    population: int | None
    parents: dict[str, Any]  # level → name from 所属街道 etc.
    file: str = ""  # the file it came from (for messages)
    code_field: str = ""  # that file's code column


# -- reading -------------------------------------------------------------------------------------------------------


def display_name(name: str) -> str:
    """A file name fit for a message: its last part, without control characters, at most 80 characters."""
    base = re.split(r"[\\/]", name or "")[-1]
    base = "".join(c for c in base if unicodedata.category(c)[0] != "C")
    return (base[:77] + "...") if len(base) > 80 else (base or "(unnamed)")


def _listed(names: Iterable[object]) -> str:
    """Column names of a file for a message: without control or bidi characters, each at most 40 characters."""
    return ", ".join("".join(c for c in str(n)[:40] if unicodedata.category(c)[0] != "C") for n in names)


def check_size(label: str, size: int, limits: Limits) -> None:
    """Refuse a file over `limits.max_bytes` (before anything reads it)."""
    if size > limits.max_bytes:
        raise ImportRefused(
            label,
            "file",
            f"文件 {size:,} 字节，超过上限 {limits.max_bytes:,} 字节",
            f"{size:,} bytes; at most {limits.max_bytes:,} bytes (GRIDMAP_IMPORT_MAX_BYTES)",
        )


def read_features(
    path: str | Path, options: Options, limits: Limits = Limits(), *, filename: str | None = None
) -> tuple[list[Feature], str]:
    """The features of a boundary file, checked, in WGS84, and the coordinate system they were read in."""
    text = str(path)
    label = display_name(filename or text)
    if text.lower().startswith(("/vsi", "vsi")) or "/vsi" in text.lower() or "://" in text:
        raise ImportRefused(
            label,
            "file",
            "须为本地文件，不接受网络或虚拟路径",
            "a local file is required, not a network or virtual path",
        )
    real = Path(text).resolve()
    if not real.is_file():
        raise ImportRefused(label, "file", "不是普通文件", "not a regular file")
    _given_system(options, label)  # the options are checked before the file is read
    if options.level is not None and options.level not in LEVELS:
        raise ImportRefused(
            label,
            "level",
            f"{options.level!r} 不是层级，可用：{', '.join(LEVELS)}",
            f"{options.level!r} is not a level; accepted: {', '.join(LEVELS)}",
        )
    if options.encoding is not None:
        try:
            codecs.lookup(options.encoding)
        except LookupError:
            raise ImportRefused(
                label,
                "encoding",
                f"未知编码 {options.encoding[:32]!r}",
                f"unknown encoding {options.encoding[:32]!r}; e.g. GBK, GB18030, UTF-8",
            ) from None
    fmt = FORMATS.get(Path(filename or text).suffix.lower())
    if fmt is None:
        raise ImportRefused(
            label, "file", f"不支持此文件类型，可用：{ACCEPTED}", f"unsupported file type; accepted: {ACCEPTED}"
        )
    check_size(label, real.stat().st_size, limits)  # measured before anything is read
    with open(real, "rb") as f:
        head = f.read(4096)
    found = content_of(head)
    if found != EXPECTED_CONTENT[fmt]:
        raise ImportRefused(
            label,
            "file",
            f"文件名为 {Path(filename or text).suffix.lower()} 但内容是 {CONTENT_NAMES[found]}",
            f"named {Path(filename or text).suffix.lower()} but holds {CONTENT_NAMES[found]} "
            f"(unsupported_format); accepted: {ACCEPTED}",
        )
    with tempfile.TemporaryDirectory(prefix="gridmap-import-") as tmp:
        work = Path(tmp)
        if fmt == "csv":
            frame, file_crs = _read_csv(real, label, options), None
        else:
            if fmt == "kmz":
                real = _unpack(real, label, limits, work, kind="kmz")
                fmt = "kml"
            elif fmt == "shapefile":
                real = _unpack(real, label, limits, work, kind="shapefile", layer=options.layer)
            if fmt == "kml":
                _check_xml(real, label)
            frame = _read_gdal(real, DRIVERS[fmt], label, options, limits, work, all_layers=fmt == "kml")
            file_crs = frame.crs
        system = _system(file_crs, options, label, fmt)
        return _features(frame, system, options, limits, label), system.name


def _unpack(archive_path: Path, label: str, limits: Limits, work: Path, *, kind: str, layer: str | None = None) -> Path:
    """Check an archive (names, sizes, ratio) before unpacking anything, then unpack what is needed into `work`,
    with a bound on every member's bytes (a member that unpacks to more than it declared is refused)."""
    from gridmap.io import tabular

    try:
        archive = zipfile.ZipFile(archive_path)
    except zipfile.BadZipFile:
        raise ImportRefused(label, "file", "不是有效的 zip 压缩包", "not a valid zip archive") from None
    with archive:
        try:
            tabular.check_archive(
                archive, repr(label), max_uncompressed=limits.max_unpacked, max_ratio=limits.max_ratio
            )
        except InvalidInput as exc:
            raise ImportRefused(
                label, "file", "压缩包不安全或过大（路径穿越、链接、压缩炸弹）", exc.message.removeprefix("file: ")
            ) from None
        infos = [i for i in archive.infolist() if not i.is_dir()]
        if kind == "kmz":
            kmls = [i for i in infos if i.filename.lower().endswith(".kml")]
            chosen = [i for i in kmls if i.filename.lower() == "doc.kml"] or kmls
            if len(chosen) != 1:
                raise ImportRefused(
                    label,
                    "file",
                    f"KMZ 应含一个 .kml（找到 {len(kmls)} 个）",
                    f"a KMZ must hold one .kml (doc.kml); found {len(kmls)}",
                )
            return _extract(archive, chosen[0], work / "doc.kml", label)
        shps = [i for i in infos if i.filename.lower().endswith(".shp")]
        stems = {i.filename[:-4]: i for i in shps}
        if not shps:
            raise ImportRefused(label, "file", "压缩包中没有 .shp 文件", "the zip holds no .shp file")
        if layer:
            named = [s for s in stems if Path(s).name == layer]
            if not named:
                raise ImportRefused(
                    label,
                    "layer",
                    f"没有名为 {layer!r} 的图层，可用：{', '.join(Path(s).name for s in stems)}",
                    f"no layer {layer!r}; accepted: {', '.join(Path(s).name for s in stems)}",
                )
            stem = named[0]
        elif len(stems) > 1:
            names = ", ".join(sorted(Path(s).name for s in stems))
            raise ImportRefused(
                label,
                "layer",
                f"压缩包中有多个图层，请用 --layer 指定：{names}",
                f"the zip holds several layers; name one with layer: {names}",
            )
        else:
            stem = next(iter(stems))
        members = {i.filename.lower(): i for i in infos}
        out = None
        for ext in SHAPEFILE_PARTS:
            info = members.get((stem + ext).lower())
            if info is None:
                if ext in (".shx", ".dbf"):
                    raise ImportRefused(
                        label,
                        "file",
                        f"缺少 {Path(stem).name}{ext}",
                        f"{Path(stem).name}{ext} is missing (a Shapefile needs .shp, .shx and .dbf)",
                    )
                continue
            target = _extract(archive, info, work / f"layer{ext}", label)
            if ext == ".shp":
                out = target
        assert out is not None  # the stem is that of a .shp member
        return out


def _extract(archive: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, label: str) -> Path:
    """Unpack one member, never more bytes than it declares (the declared sizes were checked)."""
    try:
        with archive.open(info) as src, open(target, "wb") as dst:
            written = 0
            while chunk := src.read(1 << 20):
                written += len(chunk)
                if written > info.file_size:
                    raise ImportRefused(
                        label,
                        "file",
                        "压缩包成员解压后超过其声明的大小",
                        f"member {info.filename[:60]!r} unpacks to more than it declares",
                    )
                dst.write(chunk)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError, OSError) as exc:
        raise ImportRefused(
            label, "file", "压缩包成员无法解压", f"member {info.filename[:60]!r} cannot be unpacked ({str(exc)[:80]})"
        ) from None
    return target


def _check_xml(path: Path, label: str) -> None:
    """KML must be KML: no DTD (entity expansion, external entities) and a <kml> root."""
    data = path.read_bytes()
    if b"<!DOCTYPE" in data.upper() or b"<!ENTITY" in data.upper():
        raise ImportRefused(
            label, "file", "KML 中不允许 DTD 或实体声明", "a DTD or entity declaration is not accepted in KML"
        )
    if re.search(rb"<(?:\w+:)?NetworkLink[\s>]", data):
        raise ImportRefused(
            label,
            "file",
            "KML 中不允许网络链接（NetworkLink）",
            "a NetworkLink is not accepted in KML (nothing is fetched from elsewhere)",
        )
    if not re.search(rb"<(?:\w+:)?kml[\s>]", data[:4096]):
        raise ImportRefused(
            label,
            "file",
            "内容不是 KML（例如 GDAL VRT、GML）",
            "the content is not KML (a GDAL VRT or GML, say); accepted: " + ACCEPTED,
        )


def _read_gdal(
    path: Path, driver: str, label: str, options: Options, limits: Limits, work: Path, *, all_layers: bool
) -> Any:  # a GeoDataFrame (geopandas has no types)
    """Read with one GDAL driver in a separate interpreter (see the module doc)."""
    import geopandas as gpd

    out = work / "data.parquet"
    args = [
        sys.executable,
        "-m",
        "gridmap.planning._import_reader",
        driver,
        str(path.resolve()),
        str(out),
        json.dumps(
            {
                "layer": options.layer if driver != "ESRI Shapefile" else None,
                "encoding": options.encoding,
                "max_features": limits.max_features,
                "all_layers": all_layers,
                "max_seconds": limits.max_seconds,
            }
        ),
    ]
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=limits.max_seconds + 30)
    except subprocess.TimeoutExpired:
        raise ImportRefused(label, "file", "读取超时", "reading took too long") from None
    if done.returncode != 0:
        lines = [ln for ln in done.stderr.strip().splitlines() if ln.strip()] or ["no message"]
        last = lines[-1][:800]
        if last.startswith("REFUSED "):
            field, _, message = last.removeprefix("REFUSED ").partition(" ")
            zh, _, en = message.partition("|")
            raise ImportRefused(label, field, zh, en)
        last = last.replace(str(path.resolve()), label).replace(str(work), "")[:200]  # no server paths
        raise ImportRefused(label, "file", f"无法作为 {driver} 读取", f"cannot be read as {driver} ({last})")
    return gpd.read_parquet(out)


def _read_csv(path: Path, label: str, options: Options) -> Any:  # a GeoDataFrame
    import pandas as pd

    encodings = [options.encoding] if options.encoding else ["utf-8-sig", "gb18030"]
    frame = None
    for enc in encodings:
        try:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding=enc)
            break
        except (UnicodeDecodeError, LookupError):
            continue
        except (pd.errors.ParserError, ValueError) as exc:
            raise ImportRefused(label, "file", "CSV 无法解析", f"not readable as CSV ({str(exc)[:120]})") from None
    if frame is None:
        raise ImportRefused(
            label,
            "encoding",
            f"无法按 {'/'.join(encodings)} 解码",
            f"cannot be decoded as {'/'.join(encodings)}; give encoding",
        )
    column = _column(frame.columns, WKT_FIELDS)
    if column is None:
        raise ImportRefused(
            label,
            "WKT",
            f"找不到 WKT 列（{', '.join(WKT_FIELDS)}）",
            f"no WKT column; accepted names: {', '.join(WKT_FIELDS)}; found {_listed(frame.columns[:20])}",
        )
    geoms = []
    for i, value in enumerate(frame[column], start=1):
        try:
            geoms.append(shapely.from_wkt(value) if value.strip() else None)
        except shapely.errors.ShapelyError as exc:
            raise ImportRefused(
                label, column, "不是有效的 WKT", f"not valid WKT ({str(exc)[:80]})", feature=i
            ) from None
    import geopandas as gpd

    return gpd.GeoDataFrame(frame.drop(columns=[column]), geometry=geoms, crs=None)


def _system(file_crs: CRS | None, options: Options, label: str, fmt: str) -> gcrs.CoordinateSystem:
    """The coordinate system to read the numbers in: `options.crs` when given (it overrides the file's), else the
    file's (a CSV without one is WGS84)."""
    given = _given_system(options, label)
    if given is not None:
        return given
    if file_crs is None:
        if fmt == "csv":
            return gcrs.parse_crs("wgs84")
        raise ImportRefused(
            label,
            "crs",
            "文件未说明坐标系（如缺少 .prj），请用 --crs 指定",
            "the file states no coordinate system (a Shapefile without .prj, say); give crs",
        )
    epsg = file_crs.to_epsg() or file_crs.to_epsg(min_confidence=60)
    if epsg is None:
        name = getattr(file_crs, "name", "?")
        raise ImportRefused(
            label,
            "crs",
            f"未知坐标系 {name!r}，请用 --crs 指定",
            f"unknown coordinate system {name!r}; give crs ({gcrs.ACCEPTED_TEXT})",
        )
    try:
        return gcrs.parse_crs(f"EPSG:{epsg}")
    except UnknownCRS as exc:
        raise ImportRefused(label, "crs", "未知坐标系", exc.message.removeprefix("crs: ")) from None


def _given_system(options: Options, label: str) -> gcrs.CoordinateSystem | None:
    if not options.crs:
        return None
    try:
        return gcrs.parse_crs(options.crs)
    except UnknownCRS as exc:
        raise ImportRefused(label, "crs", "未知坐标系", exc.message.removeprefix("crs: ")) from None


def _column(
    columns: Iterable[object], candidates: Iterable[str], given: str | None = None, *, label: str = "", option: str = ""
) -> str | None:
    names = [str(c) for c in columns]
    if given:
        if given in names:
            return given
        raise ImportRefused(
            label,
            option,
            f"没有名为 {given!r} 的列，现有：{_listed(names[:30])}",
            f"no column {given!r}; found: {_listed(names[:30])}",
        )
    lower = {n.lower(): n for n in reversed(names)}
    for cand in candidates:
        if cand in names:
            return cand
        if cand.lower() in lower:
            return lower[cand.lower()]
    return None


def _code_text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, (float, np.floating)):
        if not np.isfinite(value):
            return None
        raise ValueError("decimal")
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    text = unicodedata.normalize("NFKC", str(value)).strip()
    return text or None


def _count(value: object, label: str, field: str, index: int, code: str) -> int | None:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return None
    text = unicodedata.normalize("NFKC", str(value)).strip().replace(",", "")
    if not text:
        return None
    try:
        number = float(text)
    except ValueError:
        number = -1.0
    if number < 0 or number != int(number) or number > 10**9:
        raise ImportRefused(
            label,
            field,
            f"{str(value)[:20]!r} 不是非负整数",
            f"{str(value)[:20]!r} is not a whole number of 0 or more",
            feature=index,
            code=code,
        )
    return int(number)


def _features(frame: Any, system: gcrs.CoordinateSystem, options: Options, limits: Limits, label: str) -> list[Feature]:
    if len(frame) == 0:
        raise ImportRefused(label, "file", "文件中没有要素", "the file holds no features")
    if len(frame) > limits.max_features:
        raise ImportRefused(
            label,
            "file",
            f"{len(frame):,} 个要素，超过上限 {limits.max_features:,}",
            f"{len(frame):,} features; at most {limits.max_features:,}",
        )
    columns = [c for c in frame.columns if c != frame.geometry.name]
    code_col = _column(columns, CODE_FIELDS, options.code_field, label=label, option="code-field")
    if code_col is None:
        raise ImportRefused(
            label,
            "code-field",
            f"找不到编码列（{', '.join(CODE_FIELDS[:5])}…），请用 --code-field 指定",
            f"no code column ({', '.join(CODE_FIELDS)}); name it with code-field; found: {_listed(columns[:30])}",
        )
    name_col = _column(columns, NAME_FIELDS, options.name_field, label=label, option="name-field")
    hh_col = _column(columns, HOUSEHOLD_FIELDS)
    pop_col = _column(columns, POPULATION_FIELDS)
    parent_cols = {lv: _column(columns, names) for lv, names in PARENT_FIELDS.items()}
    parent_cols = {lv: c for lv, c in parent_cols.items() if c and c not in (code_col, name_col)}
    decimal_codes = str(frame[code_col].dtype).startswith("float")
    raw = frame.geometry.values
    geoms = np.array(list(raw), dtype=object)
    out: list[Feature] = []
    seen: dict[str, int] = {}
    for i, row in enumerate(frame[columns].itertuples(index=False, name=None), start=1):
        values = dict(zip(columns, row))
        try:
            code = _code_text(values[code_col]) if not decimal_codes else _code_text(float(values[code_col]))
        except ValueError:
            raise ImportRefused(
                label,
                code_col,
                "编码存为带小数的数字会丢失位数，请存为文本",
                "codes stored as decimal numbers lose digits; store them as text",
                feature=i,
            ) from None
        if code is None:
            raise ImportRefused(label, code_col, "编码为空", "the code is empty", feature=i)
        level = level_of(code)
        if level is None:
            raise ImportRefused(
                label,
                code_col,
                "编码不符合 DB11 格式（6、9、12、15 或 17–18 位数字）",
                "bad code: DB11 codes are 6, 9, 12, 15 or 17-18 digits",
                feature=i,
                code=code[:24],
            )
        if options.level and level != options.level and not _is_ancestor_level(level, options.level):
            raise ImportRefused(
                label,
                code_col,
                f"编码位数对应 {level}，与指定层级 {options.level} 不符",
                f"the code's length is a {level}'s, not a {options.level}'s",
                feature=i,
                code=code,
            )
        if code in seen:
            raise ImportRefused(
                label,
                code_col,
                f"编码重复，与第 {seen[code]} 个要素相同",
                f"duplicate code, also feature {seen[code]}",
                feature=i,
                code=code,
            )
        seen[code] = i
        geom = _polygonal(geoms[i - 1], label, i, code)
        n = shapely.get_num_coordinates(geom)
        if n > limits.max_vertices:
            raise ImportRefused(
                label,
                "geometry",
                f"{n:,} 个顶点，超过上限 {limits.max_vertices:,}",
                f"{n:,} vertices; at most {limits.max_vertices:,} (GRIDMAP_IMPORT_MAX_VERTICES)",
                feature=i,
                code=code,
            )
        name = values.get(name_col) if name_col else None
        name = unicodedata.normalize("NFKC", str(name)).strip()[:200] if name not in (None, "") else None
        parents = {}
        for lv, col in parent_cols.items():
            v = values.get(col)
            if v not in (None, "") and str(v).strip() and str(v) != "nan":
                parents[lv] = unicodedata.normalize("NFKC", str(v)).strip()[:200]
        out.append(
            Feature(
                i,
                code,
                level,
                geom,
                name if name != "nan" else None,
                _count(values.get(hh_col), label, hh_col, i, code) if hh_col else None,
                _count(values.get(pop_col), label, pop_col, i, code) if pop_col else None,
                parents,
                label,
                code_col,
            )
        )
    _to_wgs84(out, system, label)
    return out


def _is_ancestor_level(level: str, of: str) -> bool:
    return LEVELS.index(level) < LEVELS.index(of)


def _polygonal(geom: BaseGeometry | None, label: str, index: int, code: str) -> BaseGeometry:
    from gridmap.geo.coverage import as_multipolygon

    if geom is None or geom.is_empty:
        raise ImportRefused(label, "geometry", "几何为空", "the geometry is empty", feature=index, code=code)
    geom = shapely.force_2d(geom)
    if isinstance(geom, shapely.GeometryCollection):
        kinds = {g.geom_type for g in geom.geoms}
        if not kinds <= {"Polygon", "MultiPolygon"}:
            raise ImportRefused(
                label,
                "geometry",
                f"须为面（Polygon），而不是 {'/'.join(sorted(kinds))}",
                f"must be a polygon, not {'/'.join(sorted(kinds))}",
                feature=index,
                code=code,
            )
        geom = as_multipolygon(geom)
    if geom.geom_type not in ("Polygon", "MultiPolygon"):
        raise ImportRefused(
            label,
            "geometry",
            f"须为面（Polygon），而不是 {geom.geom_type}",
            f"must be a polygon, not a {geom.geom_type}",
            feature=index,
            code=code,
        )
    return geom


def _to_wgs84(features: list[Feature], system: gcrs.CoordinateSystem, label: str) -> None:
    for f in features:
        xy = shapely.get_coordinates(f.geom)
        if not np.isfinite(xy).all():
            raise ImportRefused(
                label, "geometry", "坐标不是有限数", "a coordinate is not a finite number", feature=f.index, code=f.code
            )
        if system.is_geographic and (np.abs(xy[:, 0]) > 180).any() | (np.abs(xy[:, 1]) > 90).any():
            raise ImportRefused(
                label,
                "crs",
                f"坐标超出经纬度范围，像是投影坐标；请用 --crs 指定（文件声明 {system.name}）",
                f"coordinates outside longitude/latitude ranges look projected; the file says "
                f"{system.name}; give crs (e.g. EPSG:4543)",
                feature=f.index,
                code=f.code,
            )
        if system.name != "wgs84" and system.epsg not in (4326, 4490):
            geom = shapely.transform(f.geom, lambda c: np.column_stack(gcrs.to_wgs84(c[:, 0], c[:, 1], system)))
            lon, lat = shapely.get_coordinates(geom).T
            if not (
                np.isfinite(lon).all()
                and np.isfinite(lat).all()
                and (np.abs(lon) <= 180).all()
                and (np.abs(lat) <= 90).all()
            ):
                raise ImportRefused(
                    label,
                    "crs",
                    f"坐标在 {system.name} 中无意义",
                    f"the coordinates are outside where {system.name} is defined{gcrs.zone_hint(system)}",
                    feature=f.index,
                    code=f.code,
                )
            f.geom = geom
        if not f.geom.is_valid:
            reason = shapely.is_valid_reason(f.geom)
            raise ImportRefused(
                label, "geometry", f"无效的面（{reason}）", f"invalid polygon ({reason})", feature=f.index, code=f.code
            )


# -- building the hierarchy ----------------------------------------------------------------------------------------


@dataclass
class Built:
    code: str
    level: str
    name: str
    parent: str | None
    geom: shapely.MultiPolygon
    households: int
    population: int
    is_leaf: bool
    area_m2: float = 0.0


def build_areas(
    features: list[Feature], *, places: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
) -> list[Built]:
    """Leaves noded into an exact coverage and every ancestor as the exact union of its children (outermost
    first). `places`: (points, households, population) of the buildings in the area, for leaves without counts."""
    from gridmap.boundaries.divisions import divisions
    from gridmap.geo.coverage import as_multipolygon, node_coverage, union_exact

    by_code = {f.code: f for f in features}
    has_child: set[str] = set()  # every ancestor of a feature, given in the file or not
    for leaf_code in by_code:
        up = parent_code(leaf_code)
        while up is not None and up not in has_child:
            has_child.add(up)
            up = parent_code(up)
    # a feature that is some feature's parent gives its name; its outline is the union of its children's
    leaves = [f for f in features if f.code not in has_child]
    noded = node_coverage([f.geom for f in leaves], grid_size=GRID_DEG)
    built: dict[str, Built] = {}
    for f, geom in zip(leaves, noded):
        geom = as_multipolygon(geom)
        if geom.is_empty:
            raise ImportRefused(
                f.file,
                "geometry",
                "面太小或完全被其他要素覆盖",
                "the polygon vanishes once the leaves "
                "are noded into one coverage (smaller than 1 cm, or covered by other features)",
                feature=f.index,
                code=f.code,
            )
        built[f.code] = Built(
            f.code, f.level, f.name or f"{f.code}{LEVEL_NAMES_ZH[f.level]}", parent_code(f.code), geom, 0, 0, True
        )
    _counts(leaves, built, places)
    votes: dict[str, Counter[str]] = defaultdict(Counter)
    for f in leaves:
        up = parent_code(f.code)
        while up is not None:
            lv = level_of(up)
            if lv in f.parents:
                votes[up][f.parents[lv]] += 1
            up = parent_code(up)
    dataset = divisions()
    for level in reversed(LEVELS[:-1]):
        children: dict[str, list[Built]] = defaultdict(list)
        for b in built.values():
            if b.parent and level_of(b.parent) == level:
                children[b.parent].append(b)
        for code, kids in children.items():
            if code in built:
                continue
            given = by_code.get(code)
            if given is not None and given.name:
                name = given.name
            elif votes.get(code):
                name = votes[code].most_common(1)[0][0]
            elif level == "district" and (county := dataset.county(code)) is not None:
                name = county.name
            else:
                name = f"{code}{LEVEL_NAMES_ZH[level]}"
            built[code] = Built(
                code,
                level,
                name,
                parent_code(code),
                union_exact([k.geom for k in kids]),
                sum(k.households for k in kids),
                sum(k.population for k in kids),
                False,
            )
    out = sorted(built.values(), key=lambda b: (LEVELS.index(b.level), b.code))
    _measure(out)
    return out


def _counts(
    leaves: list[Feature], built: dict[str, Built], places: tuple[np.ndarray, np.ndarray, np.ndarray] | None
) -> None:
    """Households and population of each leaf: its columns, else the buildings inside it."""
    need = [f for f in leaves if f.households is None or f.population is None]
    sums_h: dict[str, int] = defaultdict(int)
    sums_p: dict[str, int] = defaultdict(int)
    if need and places is not None and len(places[0]):
        points, households, population = places
        geoms = [built[f.code].geom for f in need]
        tree = shapely.STRtree(geoms)
        pts, polys = tree.query(points, predicate="intersects")
        taken = set()
        for p, g in zip(pts.tolist(), polys.tolist()):
            if p in taken:  # a building on a shared edge counts once
                continue
            taken.add(p)
            sums_h[need[g].code] += int(households[p])
            sums_p[need[g].code] += int(population[p])
    for f in leaves:
        b = built[f.code]
        b.households = f.households if f.households is not None else sums_h.get(f.code, 0)
        b.population = f.population if f.population is not None else sums_p.get(f.code, 0)


def _measure(areas: list[Built]) -> None:
    from gridmap.boundaries.check import metric_epsg

    for b in areas:
        if b.level != "district":
            continue
        minx, miny, maxx, maxy = b.geom.bounds
        fwd, _ = gcrs.projector(metric_epsg((minx + maxx) / 2, (miny + maxy) / 2))

        def to_metres(xy: np.ndarray, fwd: Transformer = fwd) -> np.ndarray:  # this district's projection
            return np.column_stack(fwd.transform(xy[:, 0], xy[:, 1]))

        for a in areas:
            if a.code.startswith(b.code):
                metres = shapely.transform(shapely.segmentize(a.geom, 1e-4), to_metres)
                a.area_m2 = float(metres.area)


# -- storing -------------------------------------------------------------------------------------------------------


def _places(session: Session, features: list[Feature]) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(points, households, population) of the buildings within the features' extent."""
    import sqlalchemy as sa

    from gridmap.store.tables import Place

    if not features:
        return None
    minx, miny, maxx, maxy = shapely.union_all([shapely.envelope(f.geom) for f in features]).bounds
    rows = session.execute(
        sa.select(sa.func.ST_X(Place.geom), sa.func.ST_Y(Place.geom), Place.households, Place.attributes).where(
            Place.kind == "building"
        )
    ).all()
    pts, hh, pop = [], [], []
    for x, y, households, attributes in rows:
        if x is None or not (minx <= x <= maxx and miny <= y <= maxy):
            continue
        pts.append(shapely.Point(x, y))
        hh.append(int(households or 0))
        value = (attributes or {}).get("population") if isinstance(attributes, dict) else None
        pop.append(int(value) if isinstance(value, (int, float)) and value >= 0 else 0)
    return np.array(pts, dtype=object), np.array(hh, dtype=np.int64), np.array(pop, dtype=np.int64)


def read_sources(
    sources: list[tuple[str | Path, str | None]], options: Options, limits: Limits = Limits()
) -> tuple[list[Feature], str]:
    """The features of one or more files (say, leaves in one and their parents, for their names, in another): the
    options apply to each; a code in two files is refused like a code twice in one."""
    features: list[Feature] = []
    systems = []
    seen: dict[str, Feature] = {}
    for path, filename in sources:
        found, system = read_features(path, options, limits, filename=filename)
        for f in found:
            if f.code in seen:
                other = seen[f.code]
                raise ImportRefused(
                    f.file,
                    f.code_field,
                    f"编码重复，与文件 {other.file} 第 {other.index} 个要素相同",
                    f"duplicate code, also feature {other.index} of file {other.file}",
                    feature=f.index,
                    code=f.code,
                )
            seen[f.code] = f
        features += found
        systems.append(system)
    return features, ",".join(dict.fromkeys(systems))


def import_boundaries(
    session: Session,
    path: str | Path | list[tuple[str | Path, str | None]],
    options: Options,
    limits: Limits = Limits(),
    *,
    filename: str | None = None,
    actor: str | None = None,
    household_band: str | Mapping[str, tuple[int, int]] | None = None,
) -> dict[str, Any]:
    """Read, check and store a boundary file (or several: a list of (path, name shown in messages)) as a new draft
    (see the module doc); the summary as a dict: generation_id, name, status, districts, areas per level,
    households, population, and the check's ok and problem count. Nothing is written before the files have been
    read and checked in full."""
    import sqlalchemy as sa
    from geoalchemy2.shape import from_shape

    from gridmap.boundaries import check as boundary_check
    from gridmap.boundaries import codes
    from gridmap.boundaries import generations as gens
    from gridmap.store import audit
    from gridmap.store.tables import Area, Generation

    sources = list(path) if isinstance(path, list) else [(path, filename)]
    label = ", ".join(display_name(name or str(p)) for p, name in sources)[:200]
    features, system = read_sources(sources, options, limits)
    built = build_areas(features, places=_places(session, features))
    districts = sorted(b.code for b in built if b.level == "district")
    active = session.scalars(
        sa.select(Generation).where(Generation.status == "active").order_by(Generation.id.desc()).limit(1)
    ).first()
    draft_name = (options.name or f"导入 {label} {dt.date.today().isoformat()}").strip()[:200]
    if active is not None:
        draft = gens.create_draft(session, draft_name, source_id=active.id, note=f"imported from {label}")
    else:
        if not draft_name:
            raise InvalidInput("name must not be empty", field="name", zh="名称不能为空。")
        draft = Generation(name=draft_name, status="draft", note=f"imported from {label}")
        session.add(draft)
        session.flush()
    draft.base_id = active.id if active is not None else None
    draft.created_by = actor
    replaced = {}
    for district in districts:
        where = (Area.generation_id == draft.id) & Area.code.like(district + "%")
        replaced[district] = session.scalar(sa.select(sa.func.count(Area.id)).where(where)) or 0
        if replaced[district]:
            session.execute(sa.update(Area).where(where).values(parent_id=None))
            session.execute(sa.delete(Area).where(where))
    session.flush()
    ids: dict[str, int] = {}
    for b in built:
        row = Area(
            generation_id=draft.id,
            level=b.level,
            code=b.code,
            name=b.name,
            parent_id=ids.get(b.parent) if b.parent else None,
            households=b.households,
            population=b.population,
            area_m2=b.area_m2,
            is_leaf=b.is_leaf,
            locked=False,
            geom=from_shape(b.geom, srid=4326),
        )
        session.add(row)
        if not b.is_leaf:
            session.flush()
            ids[b.code] = row.id
    session.flush()
    codes.register(session, {b.code: b.level for b in built}, draft.id)
    report = boundary_check.check_generation(session, draft.id, household_band=household_band)
    errors = sum(p["severity"] == "error" for p in report["problems"])
    if options.activate is not None:
        if errors:  # boundaries with gaps or holes are never put in force (the transaction is rolled back)
            kinds = ", ".join(
                f"{k} {n}"
                for k, n in sorted(Counter(p["kind"] for p in report["problems"] if p["severity"] == "error").items())
            )
            raise Conflict(
                f"activate: the boundary check found {errors} errors ({kinds}): nothing was activated or "
                "stored; import without activate, repair the draft, then publish it",
                field="activate",
                zh=f"生效：边界检查发现 {errors} 个错误（{kinds}），未生效，也未保存；请不带 --activate "
                "导入，在草稿中修复后再发布。",
            )
        gens.activate(session, draft.id, options.activate, actor=actor or "system")
        session.flush()
    audit.record(
        session,
        "boundary_import",
        f"generation:{draft.id}",
        {
            "file": label,
            "districts": districts,
            "areas": len(built),
            "activate": options.activate.isoformat() if options.activate else None,
        },
    )
    per_level = Counter(b.level for b in built)
    return {
        "generation_id": draft.id,
        "name": draft.name,
        "status": draft.status,
        "effective_from": draft.effective_from.isoformat() if draft.effective_from else None,
        "base_id": draft.base_id,
        "file": label,
        "crs": system,
        "features": len(features),
        "districts": districts,
        "replaced": replaced,
        "areas": {lv: per_level.get(lv, 0) for lv in LEVELS},
        "households": sum(b.households for b in built if b.level == "district"),
        "population": sum(b.population for b in built if b.level == "district"),
        "check": {
            "ok": bool(report["ok"]),
            "problems": len(report["problems"]),
            "errors": errors,
            "warnings": len(report["problems"]) - errors,
            "counts": report.get("counts", {}),
        },
    }

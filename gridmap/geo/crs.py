"""Coordinate systems: WGS84/CGCS2000, Gauss-Krüger zones, and China's offset systems GCJ-02 and BD-09.

gridmap stores every coordinate as WGS84 longitude/latitude (EPSG:4326). CGCS2000 (EPSG:4490) agrees with
WGS84 to well under a metre, so it is taken as is. GCJ-02 (AMap, Tencent, WeChat maps) and BD-09 (Baidu) are
legally mandated obfuscations of WGS84 that PROJ does not know: their forward formulas are public, their
inverses are solved here by fixed-point iteration. Areas and distances are computed in the CGCS2000 3-degree
Gauss-Krüger zone of the data (EPSG:4534-4554), never in degrees.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import TypeVar, cast

import numpy as np
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError

from gridmap.errors import InvalidCoordinate, UnknownCRS, field_zh

# Krasovsky 1940 ellipsoid, as used by the GCJ-02 formula.
_A = 6378245.0
_EE = 0.00669342162296594323
_BD_FACTOR = math.pi * 3000.0 / 180.0

NAMED_SYSTEMS = ("wgs84", "cgcs2000", "gcj02", "bd09")
ACCEPTED_TEXT = "wgs84, cgcs2000, gcj02, bd09 or EPSG:nnnn (e.g. EPSG:4326, EPSG:4490, EPSG:4543)"
ACCEPTED_TEXT_ZH = "wgs84、cgcs2000、gcj02、bd09 或 EPSG:编号（如 EPSG:4326、EPSG:4490、EPSG:4543）"


@dataclass(frozen=True)
class CoordinateSystem:
    """A parsed coordinate-system name: one of the named systems, or an EPSG code."""

    name: str
    epsg: int | None = None

    @property
    def is_offset(self) -> bool:
        """True for GCJ-02 and BD-09, which PROJ does not know."""
        return self.name in ("gcj02", "bd09")

    @property
    def is_geographic(self) -> bool:
        """True when the inputs are longitude/latitude in degrees."""
        if self.is_offset or self.epsg in (4326, 4490):
            return True
        return self.epsg is not None and bool(_crs(self.epsg).is_geographic)


# a coordinate or an array of them: the conversions keep the shape they are given
C = TypeVar("C", float, np.ndarray)


@lru_cache(maxsize=64)
def _crs(epsg: int) -> CRS:
    return CRS.from_epsg(epsg)


@lru_cache(maxsize=64)
def _to_wgs84_transformer(epsg: int) -> Transformer:
    return Transformer.from_crs(epsg, 4326, always_xy=True)


def parse_crs(text: str | None) -> CoordinateSystem:
    """Parse a coordinate-system name as users write it.

    Examples
    --------
    >>> parse_crs("GCJ-02").name
    'gcj02'
    >>> parse_crs("EPSG:4490").epsg
    4490
    """
    if text is None or not str(text).strip():
        return CoordinateSystem("wgs84", 4326)
    key = re.sub(r"[\s_\-]", "", str(text)).lower()
    aliases = {"wgs84": 4326, "epsg4326": 4326, "4326": 4326, "cgcs2000": 4490, "crs84": 4326}
    if key in aliases:
        epsg = aliases[key]
        return CoordinateSystem("wgs84" if epsg == 4326 else "cgcs2000", epsg)
    if key in ("gcj02", "gcj", "mars", "amap", "tencent"):
        return CoordinateSystem("gcj02")
    if key in ("bd09", "baidu", "bd09ll"):
        return CoordinateSystem("bd09")
    match = re.fullmatch(r"epsg:?(\d{4,6})", key)
    if match:
        epsg = int(match.group(1))
        if epsg == 4326:
            return CoordinateSystem("wgs84", 4326)
        try:
            crs = _crs(epsg)
        except CRSError:
            raise UnknownCRS(
                f"crs: EPSG:{epsg} is not a coordinate system PROJ knows; accepted: {ACCEPTED_TEXT}",
                field="crs",
                zh=f"坐标系：EPSG:{epsg} 不是已知的坐标系；可用：{ACCEPTED_TEXT_ZH}。",
            ) from None
        if not (crs.is_geographic or crs.is_projected):
            raise UnknownCRS(
                f"crs: EPSG:{epsg} is not a 2D geographic or projected system; accepted: {ACCEPTED_TEXT}",
                field="crs",
                zh=f"坐标系：EPSG:{epsg} 不是二维地理坐标系或投影坐标系；可用：{ACCEPTED_TEXT_ZH}。",
            )
        return CoordinateSystem(f"EPSG:{epsg}", epsg)
    raise UnknownCRS(
        f"crs: {text!r} is not a known coordinate system; accepted: {ACCEPTED_TEXT}",
        field="crs",
        zh=f"坐标系：{text!r} 不是已知的坐标系；可用：{ACCEPTED_TEXT_ZH}。",
    )


def out_of_china(lon: np.ndarray | float, lat: np.ndarray | float) -> np.ndarray | bool:
    """True where the GCJ-02 offset does not apply (the formula's own rectangle)."""
    lon, lat = np.asarray(lon), np.asarray(lat)
    return (lon < 72.004) | (lon > 137.8347) | (lat < 0.8293) | (lat > 55.8271)


def _offset(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y = lon - 105.0, lat - 35.0
    sx = np.sqrt(np.abs(x))
    common = (20.0 * np.sin(6.0 * x * math.pi) + 20.0 * np.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * sx + common
    dlat += (20.0 * np.sin(y * math.pi) + 40.0 * np.sin(y / 3.0 * math.pi)) * 2.0 / 3.0
    dlat += (160.0 * np.sin(y / 12.0 * math.pi) + 320.0 * np.sin(y * math.pi / 30.0)) * 2.0 / 3.0
    dlon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * sx + common
    dlon += (20.0 * np.sin(x * math.pi) + 40.0 * np.sin(x / 3.0 * math.pi)) * 2.0 / 3.0
    dlon += (150.0 * np.sin(x / 12.0 * math.pi) + 300.0 * np.sin(x / 30.0 * math.pi)) * 2.0 / 3.0
    rad = lat / 180.0 * math.pi
    magic = 1.0 - _EE * np.sin(rad) ** 2
    sqrt_magic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1.0 - _EE)) / (magic * sqrt_magic) * math.pi)
    dlon = (dlon * 180.0) / (_A / sqrt_magic * np.cos(rad) * math.pi)
    return dlon, dlat


def wgs84_to_gcj02(lon: C, lat: C) -> tuple[C, C]:
    """Forward GCJ-02 formula; points outside China are returned unchanged.

    Examples
    --------
    >>> [round(v, 4) for v in wgs84_to_gcj02(116.3975, 39.9087)]
    [116.4037, 39.9101]
    """
    lon_a, lat_a = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    dlon, dlat = _offset(lon_a, lat_a)
    outside = out_of_china(lon_a, lat_a)
    out_lon = np.where(outside, lon_a, lon_a + dlon)
    out_lat = np.where(outside, lat_a, lat_a + dlat)
    return _unwrap(out_lon, lon), _unwrap(out_lat, lat)


def gcj02_to_bd09(lon: C, lat: C) -> tuple[C, C]:
    """Forward BD-09 formula, from GCJ-02."""
    x, y = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    z = np.sqrt(x * x + y * y) + 0.00002 * np.sin(y * _BD_FACTOR)
    theta = np.arctan2(y, x) + 0.000003 * np.cos(x * _BD_FACTOR)
    return _unwrap(z * np.cos(theta) + 0.0065, lon), _unwrap(z * np.sin(theta) + 0.006, lat)


def wgs84_to_bd09(lon: C, lat: C) -> tuple[C, C]:
    """Forward BD-09 formula, from WGS84 (through GCJ-02)."""
    return gcj02_to_bd09(*wgs84_to_gcj02(lon, lat))


def _invert(
    forward: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]],
    lon: C,
    lat: C,
    tolerance: float = 1e-10,
    max_iter: int = 30,
) -> tuple[C, C]:
    """Solve forward(w) = (lon, lat) for w by fixed-point iteration; converges in a few steps."""
    target_lon, target_lat = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    w_lon, w_lat = target_lon.copy(), target_lat.copy()
    for _ in range(max_iter):
        f_lon, f_lat = forward(w_lon, w_lat)
        d_lon, d_lat = np.asarray(f_lon) - target_lon, np.asarray(f_lat) - target_lat
        w_lon, w_lat = w_lon - d_lon, w_lat - d_lat
        if np.nanmax(np.abs(np.concatenate([np.ravel(d_lon), np.ravel(d_lat)])), initial=0.0) < tolerance:
            break
    return _unwrap(w_lon, lon), _unwrap(w_lat, lat)


def gcj02_to_wgs84(lon: C, lat: C) -> tuple[C, C]:
    """Inverse of `wgs84_to_gcj02`, accurate to far below a centimetre.

    Examples
    --------
    >>> lon, lat = gcj02_to_wgs84(*wgs84_to_gcj02(102.75, 25.02))
    >>> round(lon, 9), round(lat, 9)
    (102.75, 25.02)
    """
    return _invert(wgs84_to_gcj02, lon, lat)


def bd09_to_wgs84(lon: C, lat: C) -> tuple[C, C]:
    """Inverse of `wgs84_to_bd09`."""
    return _invert(wgs84_to_bd09, lon, lat)


def _unwrap(value: np.ndarray, like: C) -> C:
    """`value` in the shape of `like`: a float for a scalar, else the array."""
    return cast(C, float(value) if np.ndim(like) == 0 else value)  # mypy cannot follow np.ndim to the TypeVar


def to_wgs84(x: C, y: C, crs: CoordinateSystem) -> tuple[C, C]:
    """Convert coordinates in `crs` to WGS84 longitude/latitude (scalars or arrays)."""
    if crs.name == "gcj02":
        return gcj02_to_wgs84(x, y)
    if crs.name == "bd09":
        return bd09_to_wgs84(x, y)
    assert crs.epsg is not None  # only gcj02 and bd09 (above) have no EPSG code
    if crs.epsg in (4326, 4490):
        if type(x) is float and type(y) is float:  # one point (a case's): as below, without numpy per point
            return x, y
        return _unwrap(np.asarray(x, float), x), _unwrap(np.asarray(y, float), y)
    out = _to_wgs84_transformer(crs.epsg).transform(x, y)
    return _unwrap(np.asarray(out[0]), x), _unwrap(np.asarray(out[1]), y)


def check_lonlat(lon: float, lat: float, *, lon_field: str = "lon", lat_field: str = "lat") -> None:
    """Raise `InvalidCoordinate` naming the field when a longitude/latitude pair is impossible."""
    for field, value in ((lon_field, lon), (lat_field, lat)):
        if value is None or not math.isfinite(value):
            raise InvalidCoordinate(
                f"{field}: {value!r} is not a finite number",
                field=field,
                zh=f"{field_zh(field)}：{value!r} 不是有效的数字。",
            )
    if not -90.0 <= lat <= 90.0:
        hint = "; did you swap longitude and latitude?" if -90.0 <= lon <= 90.0 and -180.0 <= lat <= 180.0 else ""
        raise InvalidCoordinate(
            f"{lat_field}: {lat} is outside -90..90{hint}",
            field=lat_field,
            zh=f"{field_zh(lat_field)}：{lat} 超出 -90 至 90 的范围{('；经度和纬度是否填反了？' if hint else '。')}",
        )
    if not -180.0 <= lon <= 180.0:
        raise InvalidCoordinate(
            f"{lon_field}: {lon} is outside -180..180",
            field=lon_field,
            zh=f"{field_zh(lon_field)}：{lon} 超出 -180 至 180 的范围。",
        )


def convert_point(x: float, y: float, crs: CoordinateSystem) -> tuple[float, float]:
    """Validate one input point and convert it to WGS84; errors name the field and the accepted range."""
    for field, value in (("lon", x), ("lat", y)):
        if value is None or not math.isfinite(value):
            raise InvalidCoordinate(
                f"{field}: {value!r} is not a finite number",
                field=field,
                zh=f"{field_zh(field)}：{value!r} 不是有效的数字。",
            )
    if crs.is_geographic:
        check_lonlat(x, y)
    lon, lat = to_wgs84(x, y, crs)
    if not (math.isfinite(lon) and math.isfinite(lat)):
        raise InvalidCoordinate(
            f"lon/lat: ({x}, {y}) is outside the area where {crs.name} is defined.{zone_hint(crs)}",
            field="lon",
            zh=f"经纬度：（{x}, {y}）超出坐标系 {crs.name} 的适用范围。{zone_hint_zh(crs)}",
        )
    check_lonlat(lon, lat)
    return lon, lat


def zone_hint(crs: CoordinateSystem) -> str:
    """A hint for the commonest Gauss-Krüger mistake: zone-number EPSG codes with plain eastings."""
    if crs.epsg and 4513 <= crs.epsg <= 4533:
        return (
            " EPSG:4513–4533 expect the zone number in front of the easting (e.g. 35500000);"
            " without it use the central-meridian form EPSG:4534–4554."
        )
    return ""


def zone_hint_zh(crs: CoordinateSystem) -> str:
    """`zone_hint` in Chinese."""
    if crs.epsg and 4513 <= crs.epsg <= 4533:
        return "EPSG:4513–4533 要求东坐标前带分带号（如 35500000）；不带分带号请用中央经线形式 EPSG:4534–4554。"
    return ""


def gk_zone_epsg(lon: float) -> int:
    """EPSG code of the CGCS2000 3-degree Gauss-Krüger zone (central-meridian form) for a longitude.

    Examples
    --------
    >>> gk_zone_epsg(102.8)   # Kunming, central meridian 102°E
    4543
    """
    central = 3 * round(lon / 3.0)
    if not 75 <= central <= 135:
        raise InvalidCoordinate(
            f"lon: {lon} is outside the CGCS2000 Gauss-Krüger zones (73.5..136.5)",
            field="lon",
            zh=f"经度：{lon} 超出 CGCS2000 高斯-克吕格分带的范围（73.5 至 136.5）。",
        )
    return 4534 + (central - 75) // 3


@lru_cache(maxsize=32)
def projector(epsg: int) -> tuple[Transformer, Transformer]:
    """(to metres, back to WGS84) transformers for a projected zone."""
    return (Transformer.from_crs(4326, epsg, always_xy=True), Transformer.from_crs(epsg, 4326, always_xy=True))

"""Coordinate systems: published GCJ-02/BD-09 vectors, inverse accuracy over China, parsing and validation."""

import math

import numpy as np
import pytest
from pyproj import Geod

from gridmap.errors import InvalidCoordinate, UnknownCRS
from gridmap.geo import crs

GEOD = Geod(ellps="WGS84")


def test_forward_formulas_match_published_vectors():
    # wandergis/coordtransform README: wgs84togcj02(116.404, 39.915), gcj02tobd09(116.404, 39.915), wgs84tobd09
    assert crs.wgs84_to_gcj02(116.404, 39.915) == pytest.approx((116.41024449916938, 39.91640428150164), abs=1e-12)
    assert crs.gcj02_to_bd09(116.404, 39.915) == pytest.approx((116.41036949371029, 39.92133699351021), abs=1e-12)
    assert crs.wgs84_to_bd09(116.404, 39.915) == pytest.approx((116.41662724378733, 39.922699552216216), abs=1e-12)


def test_inverses_are_within_5cm_over_all_of_china():
    rng = np.random.default_rng(42)
    lon, lat = rng.uniform(73.7, 134.7, 100_000), rng.uniform(18.2, 53.5, 100_000)
    for forward, inverse in ((crs.wgs84_to_gcj02, crs.gcj02_to_wgs84), (crs.wgs84_to_bd09, crs.bd09_to_wgs84)):
        back = inverse(*forward(lon, lat))
        _, _, dist = GEOD.inv(lon, lat, back[0], back[1])
        assert dist.max() <= 0.05


@pytest.mark.parametrize(
    "name,lon,lat,metres", [("shanghai", 121.4737, 31.2304, 482), ("beijing", 116.3975, 39.9087, 556)]
)
def test_gcj02_offset_is_hundreds_of_metres(name, lon, lat, metres):
    glon, glat = crs.wgs84_to_gcj02(lon, lat)
    _, _, dist = GEOD.inv(lon, lat, glon, glat)
    assert abs(dist - metres) < 60


def test_outside_china_is_unchanged():
    assert crs.wgs84_to_gcj02(2.35, 48.85) == (2.35, 48.85)


@pytest.mark.parametrize(
    "text,name,epsg",
    [
        (None, "wgs84", 4326),
        ("WGS84", "wgs84", 4326),
        ("cgcs2000", "cgcs2000", 4490),
        ("gcj-02", "gcj02", None),
        ("BD09", "bd09", None),
        ("EPSG:4543", "EPSG:4543", 4543),
    ],
)
def test_parse_crs(text, name, epsg):
    parsed = crs.parse_crs(text)
    assert (parsed.name, parsed.epsg) == (name, epsg)


@pytest.mark.parametrize("text", ["foo", "EPSG:99999", "epsg:abc", "web mercator"])
def test_unknown_crs_names_the_field(text):
    with pytest.raises(UnknownCRS, match="crs:.*accepted"):
        crs.parse_crs(text)


@pytest.mark.parametrize(
    "lon,lat,field,words",
    [
        (math.nan, 25.0, "lon", "finite"),
        (102.7, math.inf, "lat", "finite"),
        (25.03, 102.75, "lat", "swap"),
        (200.0, 25.0, "lon", "-180..180"),
        (102.0, -95.0, "lat", "-90..90"),
    ],
)
def test_impossible_points_name_the_field(lon, lat, field, words):
    with pytest.raises(InvalidCoordinate, match=words) as info:
        crs.convert_point(lon, lat, crs.parse_crs("wgs84"))
    assert info.value.field == field


def test_gauss_kruger_zone_round_trip():
    epsg = crs.gk_zone_epsg(102.75)
    assert epsg == 4543
    x, y = crs.projector(epsg)[0].transform(102.75, 25.03)
    assert crs.convert_point(x, y, crs.parse_crs(f"EPSG:{epsg}")) == pytest.approx((102.75, 25.03), abs=1e-9)


CONTROL_POINTS = [  # city centres across China's extent, and the corners of the GCJ-02 rectangle's inhabited part
    ("kunming_guandu", 102.7358, 25.0150),
    ("beijing", 116.3975, 39.9087),
    ("shanghai", 121.4737, 31.2304),
    ("urumqi", 87.6168, 43.8256),
    ("harbin", 126.5349, 45.8038),
    ("sanya", 109.5119, 18.2528),
    ("lhasa", 91.1409, 29.6456),
    ("kashgar", 75.9897, 39.4704),
    ("mohe", 122.5386, 52.9720),
    ("fuyuan", 134.2940, 48.3648),
    ("datong_pingcheng", 113.3000, 40.0900),
    ("nanchong", 106.0900, 30.8000),
]


@pytest.mark.parametrize("name,lon,lat", CONTROL_POINTS)
def test_datum_round_trips_on_control_points(name, lon, lat):
    for forward, inverse in ((crs.wgs84_to_gcj02, crs.gcj02_to_wgs84), (crs.wgs84_to_bd09, crs.bd09_to_wgs84)):
        shifted = forward(lon, lat)
        _, _, offset = GEOD.inv(lon, lat, *shifted)
        assert 50 < offset < 1500  # the offset is real, hundreds of metres
        back = inverse(*shifted)
        _, _, err = GEOD.inv(lon, lat, *back)
        assert err <= 0.05
        # and the other way round: the inverse of a GCJ-02/BD-09 coordinate maps forward onto it
        again = forward(*inverse(lon, lat))
        _, _, err2 = GEOD.inv(lon, lat, *again)
        assert err2 <= 0.05


@pytest.mark.parametrize("zone_epsg,cm_epsg", [(4514, 4535), (4523, 4544), (4533, 4554)])
def test_gauss_kruger_zone_number_form_and_central_meridian_form_agree(zone_epsg, cm_epsg):
    central = 75 + 3 * (cm_epsg - 4534)
    lon, lat = central + 0.8, 30.0
    for epsg in (zone_epsg, cm_epsg):
        x, y = crs.projector(epsg)[0].transform(lon, lat)
        assert crs.convert_point(x, y, crs.parse_crs(f"EPSG:{epsg}")) == pytest.approx((lon, lat), abs=1e-9)
    x_zone, _ = crs.projector(zone_epsg)[0].transform(lon, lat)
    assert x_zone > 10_000_000  # the zone-number form carries the zone in front of the easting


def test_cgcs2000_is_taken_as_wgs84():
    assert crs.convert_point(102.7358, 25.015, crs.parse_crs("EPSG:4490")) == (102.7358, 25.015)

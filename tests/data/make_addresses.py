"""Write tests/data/addresses.csv: labelled address strings derived from the small demo's gazetteer.

    python tests/data/make_addresses.py sqlite:////tmp/small.sqlite   # a database loaded with
    gridmap --database sqlite:////tmp/small.sqlite demo --small --seed 11 --today 2026-11-20

Each row: text, expected kind and name (empty = must not match), variant. Variants imitate 12345 tickets: with and
without the province/city/district/sub-district prefix, road + house number, 栋/幢/座/号楼/# variants, Chinese
and full-width numerals, unit and room numbers, trailing words, one-character typos (homophones and slips), and
strings that must not match (other cities, places not in the district, vague text, unknown house numbers).
"""

from __future__ import annotations

import csv
import re
import sys
from pathlib import Path

import numpy as np
import sqlalchemy as sa
from rapidfuzz.distance import Levenshtein

from gridmap.demo.names import chinese_ordinal
from gridmap.store import engine as storage
from gridmap.store.tables import Area, Place

OUT = Path(__file__).with_name("addresses.csv")
HOMOPHONES = {
    "金": "今",
    "星": "心",
    "云": "运",
    "和": "合",
    "园": "圆",
    "苑": "院",
    "华": "化",
    "福": "付",
    "新": "心",
    "春": "纯",
    "城": "成",
    "明": "名",
    "德": "得",
    "风": "峰",
    "马": "玛",
    "紫": "子",
    "光": "广",
    "阳": "杨",
    "嘉": "佳",
    "兴": "星",
    "海": "还",
    "湖": "胡",
    "翠": "脆",
    "家": "佳",
    "花": "华",
    "龙": "隆",
    "泉": "全",
    "宝": "保",
    "祥": "详",
    "东": "冬",
    "西": "希",
    "南": "男",
    "北": "背",
    "民": "名",
    "安": "按",
    "康": "抗",
    "乐": "勒",
    "丰": "风",
    "团": "图",
    "结": "节",
}
FULLWIDTH = str.maketrans("0123456789", "０１２３４５６７８９")
TRAILING = ["门口", "附近", "东门", "旁边", "楼下", "对面", ""]


def cn_number(n: int) -> str:
    if n < 100:
        return chinese_ordinal(n)
    digits = "零一二三四五六七八九"
    hundreds, rest = divmod(n, 100)
    if rest == 0:
        return digits[hundreds] + "百"
    if rest < 10:
        return digits[hundreds] + "百零" + digits[rest]
    return digits[hundreds] + "百" + ("一" if rest < 20 else "") + chinese_ordinal(rest)


def typo(name: str, rng: np.random.Generator) -> str:
    """One character of the name replaced by a homophone (or dropped when none is known)."""
    positions = [i for i, c in enumerate(name) if c in HOMOPHONES]
    if positions:
        i = int(rng.choice(positions))
        return name[:i] + HOMOPHONES[name[i]] + name[i + 1 :]
    i = int(rng.integers(0, len(name)))
    return name[:i] + name[i + 1 :]


def main(url: str) -> None:
    rng = np.random.default_rng(2026)
    session = storage.make_sessionmaker(storage.make_engine(url))()
    places = session.scalars(sa.select(Place).order_by(Place.id)).all()
    compounds = [p for p in places if p.kind == "compound"]
    by_id = {p.id: p for p in places}
    communities = session.scalars(sa.select(Area).where(Area.level == "community").order_by(Area.code)).all()
    subdistricts = session.scalars(sa.select(Area).where(Area.level == "subdistrict").order_by(Area.code)).all()
    names = [c.name for c in compounds]
    rows: list[tuple[str, str, str, str]] = []

    def add(text: str, kind: str, name: str, variant: str) -> None:
        rows.append((text, kind, name, variant))

    for c in compounds:
        m = re.match(r"^(.*?官渡区)(.+?(?:大道|路|街|巷))(\d+)号(.+)$", c.address)
        road, number, name = m.group(2), int(m.group(3)), m.group(4)
        sub = subdistricts[int(rng.integers(len(subdistricts)))].name
        add(c.address, "compound", c.name, "full_address")
        add(f"官渡区{road}{number}号{name}", "compound", c.name, "district_prefix")
        add(f"{road}{number}号", "compound", c.name, "road_number_only")
        add(f"{name}{TRAILING[int(rng.integers(len(TRAILING)))]}", "compound", c.name, "name_trailing_words")
        add(f"云南省昆明市{road}{cn_number(number)}号{name}", "compound", c.name, "chinese_numerals")
        add(f"官渡区 {road}{str(number).translate(FULLWIDTH)}号  {name}", "compound", c.name, "fullwidth_spaces")
        add(f"{road}{number}号{typo(name, rng)}", "compound", c.name, "typo_with_road")
        t = typo(name, rng)
        if len(name) >= 4 and min(Levenshtein.distance(t, n) for n in names if n != c.name) > 1:
            add(f"{sub}{t}", "compound", c.name, "typo_name_only")
        add(f"{road}{number + 1000}号", "", "", "unknown_house_number")
    for b in (p for p in places if p.kind == "building"):
        compound = by_id[b.parent_id]
        n = int(re.search(r"(\d+)栋$", b.name).group(1))
        road_part = re.match(r"^.*?官渡区(.+?\d+号)", compound.address).group(1)
        choice = int(rng.integers(0, 5))
        unit, room = int(rng.integers(1, 5)), int(rng.integers(1, 7)) * 100 + int(rng.integers(1, 5))
        if choice == 0:
            add(f"{compound.name}{n}栋{unit}单元{room}室", "building", b.name, "building_unit_room")
        elif choice == 1:
            add(f"{compound.name}{cn_number(n)}幢", "building", b.name, "building_chinese_zhuang")
        elif choice == 2:
            add(f"{road_part}{compound.name}{n}号楼{unit}单元", "building", b.name, "road_building_haolou")
        elif choice == 3:
            add(f"{compound.name}{str(n).translate(FULLWIDTH)}#楼", "building", b.name, "building_hash")
        else:
            add(f"昆明市官渡区{compound.name}{n}座{room}", "building", b.name, "building_zuo_room")
        if rng.random() < 0.5:
            add(f"{typo(compound.name, rng)}{n}栋", "building", b.name, "building_typo")
    for c in compounds[:6]:
        add(f"{c.name}{60 + int(rng.integers(0, 20))}栋", "compound", c.name, "unknown_building_number")
    for p in (p for p in places if p.kind == "service_centre"):
        add(p.name, "service_centre", p.name, "centre_name")
        add(f"昆明市官渡区{p.name}", "service_centre", p.name, "centre_prefixed")
    for a in communities:
        add(a.name, "community", a.name, "community_name")
        add(f"官渡区{a.name}居委会", "community", a.name, "community_committee")
    negatives = [
        "北京市朝阳区建国路88号",
        "上海市浦东新区世纪大道100号",
        "昆明市五华区青年路200号",
        "广州市天河区体育西路1号",
        "呈贡区吴家营街道",
        "路边有垃圾没人管",
        "不知道具体位置",
        "我家楼下",
        "12345",
        "小区门口",
        "",
        "   ",
        "请尽快处理",
        "某某小区",
        "西山区滇池路1号",
        "盘龙区北京路900号",
        "云南省大理市洱海路3号",
        "深圳市南山区科技园",
        "官渡区",
        "昆明市",
        "电话打不通",
        "噪音扰民",
        "一直漏水",
        "井盖丢失在马路中间",
        "<script>alert(1)</script>",
        "'; DROP TABLE place; --",
        "ＡＢＣ１２３",
        "🙂🙂🙂",
    ]
    for text in negatives:
        add(text, "", "", "negative")
    # names that are not in the district (checked to be more than one edit away from every real name)
    pool = [
        "翡翠湾",
        "万科城",
        "碧桂园",
        "保利",
        "恒大绿洲",
        "融创",
        "中海",
        "龙湖",
        "招商",
        "绿地",
        "世茂",
        "金地",
        "雅居乐",
        "远洋",
        "首开",
        "华润",
        "旭辉",
        "新城",
        "阳光城",
        "富力",
    ]
    for i, word in enumerate(pool):
        for suffix in ("小区", "花园"):
            fake = word + suffix
            if min(Levenshtein.distance(fake, n) for n in names) > 1:
                add(f"官渡区{fake}{i % 9 + 1}栋", "", "", "unknown_compound")
    with OUT.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "expected_kind", "expected_name", "variant"])
        w.writerows(rows)
    print(f"{len(rows)} rows ({sum(1 for r in rows if r[1])} positive) → {OUT}")


if __name__ == "__main__":
    main(sys.argv[1])

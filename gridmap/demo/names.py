"""Fictitious but plausible Chinese names for the demo: communities, roads, compounds, people, phone numbers."""

from __future__ import annotations

from typing import Any

import numpy as np

from gridmap.demo.draws import Draws, draws

DISTRICTS: dict[str, dict[str, Any]] = {
    "530111": {
        "name": "官渡区",
        "city": "昆明市",
        "province": "云南省",
        "prefix": "GD",
        "subdistricts": [
            "关上街道",
            "太和街道",
            "吴井街道",
            "金马街道",
            "小板桥街道",
            "官渡街道",
            "矣六街道",
            "六甲街道",
        ],
        "centre": (102.735, 25.015),
    },
    "140213": {
        "name": "平城区",
        "city": "大同市",
        "province": "山西省",
        "prefix": "PC",
        "subdistricts": ["北关街道", "新华街街道", "南关街道", "大庆路街道", "向阳里街道", "新建南路街道"],
        "centre": (113.30, 40.09),
    },
    "511302": {
        "name": "顺庆区",
        "city": "南充市",
        "province": "四川省",
        "prefix": "SQ",
        "subdistricts": ["中城街道", "北城街道", "西城街道", "东南街道", "舞凤街道", "华凤街道"],
        "centre": (106.09, 30.80),
    },
    "320282": {
        "name": "宜兴市",
        "city": "无锡市",
        "province": "江苏省",
        "prefix": "YX",
        "subdistricts": ["宜城街道", "屺亭街道", "新街街道", "新庄街道", "芳桥街道"],
        "centre": (119.82, 31.36),
    },
}

_WORDS = [
    "和平",
    "新华",
    "春城",
    "金星",
    "福德",
    "东风",
    "太和",
    "永胜",
    "民航",
    "吴井",
    "关上",
    "金马",
    "双龙",
    "明波",
    "云秀",
    "世纪",
    "前卫",
    "星火",
    "彩云",
    "青云",
    "凉亭",
    "羊甫",
    "新村",
    "虹桥",
    "红庙",
    "大树",
    "董家湾",
    "石虎",
    "宏仁",
    "矣六",
    "六甲",
    "宝海",
    "福保",
    "海东",
    "梁家河",
    "小街",
    "塘子巷",
    "菊花",
    "兴旺",
    "锦绣",
    "滇池",
    "官南",
    "牛街庄",
    "白沙河",
    "金色",
    "朝阳",
    "幸福",
    "友谊",
    "长青",
    "建设",
    "文化",
    "花园",
    "阳光",
    "丰收",
    "团结",
    "光明",
    "北京路",
    "环城",
    "白塔",
    "凤凰",
    "金殿",
    "海埂",
    "盘龙",
    "玉溪",
    "紫云",
    "祥和",
    "顺城",
    "康乐",
    "嘉园",
    "翠湖",
    "银河",
    "春苑",
    "金湾",
    "华夏",
    "绿洲",
    "东华",
    "月牙塘",
    "螺蛳湾",
    "金汁河",
    "宝善",
    "五一",
    "民生",
    "安宁",
    "兴隆",
    "东骧",
    "西苑",
    "南屏",
    "北辰",
    "铁路",
    "世博",
    "龙泉",
    "雨花",
]
_ROAD_SUFFIX = ["路", "街", "大道", "巷", "中路", "东路", "西路", "南路", "北路"]
_COMPOUND_SUFFIX = ["小区", "花园", "苑", "家园", "新村", "公寓", "雅居", "嘉园"]
_SURNAMES = list(
    "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕苏卢蒋蔡贾丁魏薛叶阎余潘杜戴夏钟汪田任姜范方石姚谭廖邹熊金陆郝孔白崔康毛邱秦江史顾侯邵孟龙万段漕钱汤尹黎易常武乔贺赖龚文"
)
_GIVEN = list(
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红梅鹏辉建国志宏春燕林海波云飞丹琳雪峰晓婷慧颖斌浩宇凯琴玲晨雨欣怡佳"
)
# the pools as arrays once: `rng.choice` draws the same from a list and from its array, but converts a list per call
_WORDS_A, _ROAD_SUFFIX_A, _COMPOUND_SUFFIX_A, _SURNAMES_A, _GIVEN_A = (
    np.array(pool) for pool in (_WORDS, _ROAD_SUFFIX, _COMPOUND_SUFFIX, _SURNAMES, _GIVEN)
)


def unique_words(rng: np.random.Generator, n: int, used: set[str] | None = None) -> list[str]:
    """`n` distinct place words; when the pool runs out, two words are combined."""
    used = set() if used is None else used
    out: list[str] = []
    pool = list(_WORDS)
    rng.shuffle(pool)
    i = 0
    while len(out) < n:
        if i < len(pool):
            word = pool[i]
        else:
            a, b = rng.choice(len(_WORDS), 2, replace=False)
            word = _WORDS[a][:2] + _WORDS[b][:2]
        i += 1
        if word not in used:
            used.add(word)
            out.append(word)
    return out


def road_name(rng: np.random.Generator) -> str:
    """A road name such as 春城路 or 吴井东路."""
    return str(rng.choice(_WORDS_A)) + str(rng.choice(_ROAD_SUFFIX_A))


def compound_name(rng: np.random.Generator, used: set[str]) -> str:
    """A residential compound name, distinct from those in `used`."""
    while True:
        name = str(rng.choice(_WORDS_A)) + str(rng.choice(_COMPOUND_SUFFIX_A))
        if name not in used:
            used.add(name)
            return name
        if len(used) > 600:
            name = f"{name}{len(used) % 9 + 2}期"
            if name not in used:
                used.add(name)
                return name


def person_name(rng: np.random.Generator | Draws) -> str:
    """A two- or three-character personal name."""
    # rng.choice(_GIVEN_A, size=k) and rng.choice(_SURNAMES_A), drawn as `rng.choice` draws them (integers below
    # the pool's length, `Draws.below`) without its checks on every call
    below = draws(rng).below
    k, given = below(2) + 1, len(_GIVEN)
    name = _GIVEN[below(given)] if k == 1 else _GIVEN[below(given)] + _GIVEN[below(given)]
    return _SURNAMES[below(len(_SURNAMES))] + name


def phone_number(rng: np.random.Generator | Draws) -> str:
    """A mobile number of the Chinese form 1[3-9]xxxxxxxxx (fictitious)."""
    below = draws(rng).below  # rng.integers(3, 10), then rng.integers(0, 10, size=9)
    second = below(7) + 3
    return f"1{second}" + "".join([_DIGITS[below(10)] for _ in range(9)])


_DIGITS = "0123456789"


def chinese_ordinal(n: int) -> str:
    """1 → 一, 12 → 十二, 25 → 二十五 (up to 99)."""
    digits = "零一二三四五六七八九"
    if n < 10:
        return digits[n]
    tens, ones = divmod(n, 10)
    return (digits[tens] if tens > 1 else "") + "十" + (digits[ones] if ones else "")

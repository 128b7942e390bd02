"""The seed catalogue of departments and case categories (events, components, community services).

Time limits follow the local tables quoted in DOMAIN.md §3 (exposed garbage 4 working hours, dirty road 5 working
hours, waterlogging 4 working hours, illegal structure 15 working days); the others are of the same kind.
"""

from __future__ import annotations

DEPARTMENTS = [
    ("CG", "区城市管理局"), ("ZJ", "区住房和城乡建设局"), ("SW", "区水务局"), ("SJ", "区市场监督管理局"),
    ("GA", "公安分局"), ("JT", "交警大队"), ("HB", "生态环境分局"), ("YL", "区园林绿化局"),
    ("MZ", "区民政局"), ("WJ", "区卫生健康局"), ("GD", "供电局"), ("TX", "通信管理办公室"),
]

# (code, kind, major class, name, limit, unit, department, urgency)
CATEGORIES = [
    ("E0101", "event", "市容环境", "暴露垃圾", 4, "work_hours", "CG", "normal"),
    ("E0102", "event", "市容环境", "道路不洁", 5, "work_hours", "CG", "normal"),
    ("E0103", "event", "市容环境", "积存垃圾渣土", 1, "work_days", "CG", "normal"),
    ("E0104", "event", "市容环境", "水域不洁", 2, "work_days", "SW", "normal"),
    ("E0105", "event", "市容环境", "油烟污染", 3, "work_days", "HB", "normal"),
    ("E0106", "event", "市容环境", "噪声扰民", 1, "work_days", "HB", "normal"),
    ("E0107", "event", "市容环境", "焚烧垃圾", 2, "work_hours", "CG", "urgent"),
    ("E0201", "event", "宣传广告", "违规张贴小广告", 1, "work_days", "CG", "normal"),
    ("E0202", "event", "宣传广告", "违规户外广告", 5, "work_days", "CG", "normal"),
    ("E0203", "event", "宣传广告", "占道宣传", 1, "work_days", "CG", "normal"),
    ("E0301", "event", "施工管理", "施工扰民", 1, "work_days", "ZJ", "normal"),
    ("E0302", "event", "施工管理", "违法建设", 15, "work_days", "ZJ", "normal"),
    ("E0303", "event", "施工管理", "工地扬尘", 1, "work_days", "HB", "normal"),
    ("E0304", "event", "施工管理", "道路遗撒", 4, "work_hours", "CG", "normal"),
    ("E0401", "event", "街面秩序", "占道经营", 2, "work_hours", "CG", "normal"),
    ("E0402", "event", "街面秩序", "店外经营", 4, "work_hours", "CG", "normal"),
    ("E0403", "event", "街面秩序", "机动车乱停放", 2, "work_hours", "JT", "normal"),
    ("E0404", "event", "街面秩序", "非机动车乱停放", 4, "work_hours", "CG", "normal"),
    ("E0405", "event", "街面秩序", "流浪乞讨", 1, "work_days", "MZ", "normal"),
    ("E0501", "event", "突发事件", "道路积水", 4, "work_hours", "SW", "urgent"),
    ("E0502", "event", "突发事件", "火灾隐患", 2, "work_hours", "GA", "urgent"),
    ("E0503", "event", "突发事件", "路面塌陷", 2, "work_hours", "ZJ", "urgent"),
    ("E0504", "event", "突发事件", "燃气泄漏", 1, "work_hours", "ZJ", "urgent"),
    ("E0601", "event", "扩展事件", "群租房", 10, "work_days", "ZJ", "normal"),
    ("E0602", "event", "扩展事件", "物业纠纷", 5, "work_days", "ZJ", "normal"),
    ("E0603", "event", "扩展事件", "食品安全", 3, "work_days", "SJ", "normal"),
    ("C0101", "component", "公用设施", "井盖缺失", 2, "work_hours", "SW", "urgent"),
    ("C0102", "component", "公用设施", "井盖破损", 1, "work_days", "SW", "normal"),
    ("C0103", "component", "公用设施", "雨水箅子堵塞", 1, "work_days", "SW", "normal"),
    ("C0104", "component", "公用设施", "供水管道漏水", 4, "work_hours", "SW", "urgent"),
    ("C0105", "component", "公用设施", "通信线缆杂乱", 10, "work_days", "TX", "normal"),
    ("C0201", "component", "道路交通", "路灯不亮", 3, "work_days", "CG", "normal"),
    ("C0202", "component", "道路交通", "交通信号灯故障", 4, "work_hours", "JT", "urgent"),
    ("C0203", "component", "道路交通", "道路破损", 5, "work_days", "ZJ", "normal"),
    ("C0204", "component", "道路交通", "护栏损坏", 3, "work_days", "JT", "normal"),
    ("C0301", "component", "市容环境", "垃圾桶破损", 2, "work_days", "CG", "normal"),
    ("C0302", "component", "市容环境", "公厕设施损坏", 2, "work_days", "CG", "normal"),
    ("C0401", "component", "园林绿化", "树木倒伏", 4, "work_hours", "YL", "urgent"),
    ("C0402", "component", "园林绿化", "绿地破坏", 5, "work_days", "YL", "normal"),
    ("C0501", "component", "房屋土地", "危房隐患", 3, "work_days", "ZJ", "urgent"),
    ("C0601", "component", "其它设施", "电力设施损坏", 1, "work_days", "GD", "normal"),
    ("C0701", "component", "扩展部件", "监控设施损坏", 5, "work_days", "GA", "normal"),
    ("S0101", "service", "社区服务", "矛盾纠纷调解", 7, "calendar_days", "MZ", "normal"),
    ("S0102", "service", "社区服务", "独居老人关爱", 3, "calendar_days", "MZ", "normal"),
    ("S0103", "service", "社区服务", "安全隐患排查", 3, "work_days", "GA", "normal"),
    ("S0104", "service", "社区服务", "物业管理问题", 5, "work_days", "ZJ", "normal"),
]

# Relative frequency of each major class in the demo's year of cases.
CLASS_WEIGHTS = {"市容环境": 30, "宣传广告": 8, "施工管理": 8, "街面秩序": 22, "突发事件": 3, "扩展事件": 6,
                 "公用设施": 6, "道路交通": 6, "园林绿化": 2, "房屋土地": 1, "其它设施": 1, "扩展部件": 1,
                 "社区服务": 6}

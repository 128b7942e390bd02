"""The seed catalogue of departments and case categories (events, components, community services).

Time limits follow the local tables quoted in docs/DOMAIN.md §3 (exposed garbage 4 working hours, dirty road 5 working
hours, waterlogging 4 working hours, illegal structure 15 working days); the others are of the same kind.
"""

from __future__ import annotations

DEPARTMENTS = [
    ("CG", "区城市管理局"), ("ZJ", "区住房和城乡建设局"), ("SW", "区水务局"), ("SJ", "区市场监督管理局"),
    ("GA", "公安分局"), ("JT", "交警大队"), ("HB", "生态环境分局"), ("YL", "区园林绿化局"),
    ("MZ", "区民政局"), ("WJ", "区卫生健康局"), ("GD", "供电局"), ("TX", "通信管理办公室"),
]

# (code, kind, major class, name, limit, unit, department, urgency, filing condition 立案条件)
CATEGORIES = [
    # events 事件 — six major classes
    ("E0101", "event", "市容环境", "暴露垃圾", 4, "work_hours", "CG", "normal", "公共区域暴露垃圾≥0.5平方米或袋装垃圾≥3袋"),
    ("E0102", "event", "市容环境", "道路不洁", 5, "work_hours", "CG", "normal", "车行道或人行道连续10米以上有明显污迹、杂物"),
    ("E0103", "event", "市容环境", "积存垃圾渣土", 1, "work_days", "CG", "normal", "公共区域积存垃圾渣土≥1立方米"),
    ("E0104", "event", "市容环境", "水域不洁", 2, "work_days", "SW", "normal", "河道、沟渠水面漂浮物≥2平方米或有明显异味"),
    ("E0105", "event", "市容环境", "油烟污染", 3, "work_days", "HB", "normal", "餐饮油烟直排或净化设施未运行，有居民投诉"),
    ("E0106", "event", "市容环境", "噪声扰民", 1, "work_days", "HB", "normal", "夜间22时至次日6时社会生活、商业噪声持续扰民"),
    ("E0107", "event", "市容环境", "焚烧垃圾", 2, "work_hours", "CG", "urgent", "露天焚烧垃圾、树叶或其他废弃物"),
    ("E0108", "event", "市容环境", "垃圾满溢", 4, "work_hours", "CG", "normal", "垃圾桶、垃圾房满溢，散落地面"),
    ("E0109", "event", "市容环境", "动物尸体", 2, "work_hours", "CG", "normal", "道路、绿地、水域有动物尸体"),
    ("E0110", "event", "市容环境", "违规饲养家禽家畜", 3, "work_days", "CG", "normal", "城区内饲养家禽家畜，影响环境卫生"),
    ("E0201", "event", "宣传广告", "违规张贴小广告", 1, "work_days", "CG", "normal", "同一处墙面、设施上小广告≥3张"),
    ("E0202", "event", "宣传广告", "违规户外广告", 5, "work_days", "CG", "normal", "未经审批设置的户外广告、招牌"),
    ("E0203", "event", "宣传广告", "占道宣传", 1, "work_days", "CG", "normal", "占用道路、广场进行商业宣传、咨询活动"),
    ("E0204", "event", "宣传广告", "非法散发小广告", 1, "work_days", "CG", "normal", "在公共场所散发、悬挂非法小广告"),
    ("E0205", "event", "宣传广告", "广告牌匾破损", 3, "work_days", "CG", "normal", "广告牌、门头牌匾破损、缺字或有坠落隐患"),
    ("E0301", "event", "施工管理", "施工扰民", 1, "work_days", "ZJ", "normal", "夜间未经许可施工或施工噪声扰民"),
    ("E0302", "event", "施工管理", "违法建设", 15, "work_days", "ZJ", "normal", "未取得规划许可新建、扩建、改建的建筑物、构筑物"),
    ("E0303", "event", "施工管理", "工地扬尘", 1, "work_days", "HB", "normal", "工地未覆盖裸土、未洒水降尘，扬尘明显"),
    ("E0304", "event", "施工管理", "道路遗撒", 4, "work_hours", "CG", "normal", "运输车辆遗撒渣土、砂石，长度≥5米"),
    ("E0305", "event", "施工管理", "无证掘路", 1, "work_days", "ZJ", "normal", "未经许可挖掘城市道路"),
    ("E0306", "event", "施工管理", "施工占道", 1, "work_days", "JT", "normal", "施工围挡、材料超范围占用道路"),
    ("E0401", "event", "街面秩序", "占道经营", 2, "work_hours", "CG", "normal", "占用道路、广场摆摊设点经营"),
    ("E0402", "event", "街面秩序", "店外经营", 4, "work_hours", "CG", "normal", "沿街商户超出门窗、外墙经营、作业"),
    ("E0403", "event", "街面秩序", "机动车乱停放", 2, "work_hours", "JT", "normal", "机动车停放在人行道、消防通道或禁停区域"),
    ("E0404", "event", "街面秩序", "非机动车乱停放", 4, "work_hours", "CG", "normal", "非机动车无序停放影响通行，≥5辆"),
    ("E0405", "event", "街面秩序", "流浪乞讨", 1, "work_days", "MZ", "normal", "流浪乞讨人员滞留公共场所"),
    ("E0406", "event", "街面秩序", "无照游商", 2, "work_hours", "SJ", "normal", "流动商贩无照经营"),
    ("E0407", "event", "街面秩序", "露天烧烤", 2, "work_hours", "CG", "normal", "在露天场所进行烧烤经营"),
    ("E0408", "event", "街面秩序", "乱堆物堆料", 1, "work_days", "CG", "normal", "公共区域堆放物料≥1立方米"),
    ("E0409", "event", "街面秩序", "乱拉乱挂", 1, "work_days", "CG", "normal", "在树木、设施上晾晒、悬挂物品或私拉电线"),
    ("E0501", "event", "突发事件", "道路积水", 4, "work_hours", "SW", "urgent", "道路积水深度≥15厘米或面积≥50平方米"),
    ("E0502", "event", "突发事件", "火灾隐患", 2, "work_hours", "GA", "urgent", "易燃物堆放、私拉电线等可能引发火灾的情形"),
    ("E0503", "event", "突发事件", "路面塌陷", 2, "work_hours", "ZJ", "urgent", "道路出现塌陷、空洞"),
    ("E0504", "event", "突发事件", "燃气泄漏", 1, "work_hours", "ZJ", "urgent", "闻到燃气味或燃气设施泄漏"),
    ("E0505", "event", "突发事件", "供水管道爆裂", 2, "work_hours", "SW", "urgent", "供水管道爆裂、大量漏水"),
    ("E0506", "event", "突发事件", "群体性聚集", 1, "work_hours", "GA", "urgent", "10人以上聚集，可能影响公共秩序"),
    ("E0601", "event", "扩展事件", "群租房", 10, "work_days", "ZJ", "normal", "住宅分割出租或人均居住面积低于规定"),
    ("E0602", "event", "扩展事件", "物业纠纷", 5, "work_days", "ZJ", "normal", "业主与物业服务企业之间的纠纷"),
    ("E0603", "event", "扩展事件", "食品安全", 3, "work_days", "SJ", "normal", "销售过期、变质食品或无证餐饮"),
    ("E0604", "event", "扩展事件", "违规养犬", 3, "work_days", "GA", "normal", "未拴绳遛犬、饲养禁养犬或犬只扰民"),
    ("E0605", "event", "扩展事件", "消防通道堵塞", 1, "work_days", "GA", "urgent", "消防通道、安全出口被占用、堵塞"),
    ("E0606", "event", "扩展事件", "电动车违规充电", 1, "work_days", "GA", "urgent", "在楼道、室内违规为电动自行车充电或飞线充电"),
    ("E0607", "event", "扩展事件", "高空抛物", 3, "work_days", "GA", "normal", "从建筑物中抛掷物品"),
    # components 部件 — seven major classes; routed to their owner first
    ("C0101", "component", "公用设施", "井盖缺失", 2, "work_hours", "SW", "urgent", "各类井盖缺失"),
    ("C0102", "component", "公用设施", "井盖破损", 1, "work_days", "SW", "normal", "井盖破损、错位、不平"),
    ("C0103", "component", "公用设施", "雨水箅子堵塞", 1, "work_days", "SW", "normal", "雨水箅子堵塞、缺失"),
    ("C0104", "component", "公用设施", "供水管道漏水", 4, "work_hours", "SW", "urgent", "供水管道、阀门渗漏"),
    ("C0105", "component", "公用设施", "通信线缆杂乱", 10, "work_days", "TX", "normal", "架空线缆杂乱、垂落"),
    ("C0106", "component", "公用设施", "消火栓损坏", 1, "work_days", "GA", "urgent", "市政消火栓损坏、漏水或被圈占"),
    ("C0107", "component", "公用设施", "燃气设施损坏", 2, "work_hours", "ZJ", "urgent", "燃气调压箱、标志桩损坏"),
    ("C0201", "component", "道路交通", "路灯不亮", 3, "work_days", "CG", "normal", "路灯不亮、常亮或灯杆倾斜"),
    ("C0202", "component", "道路交通", "交通信号灯故障", 4, "work_hours", "JT", "urgent", "信号灯不亮、闪烁异常"),
    ("C0203", "component", "道路交通", "道路破损", 5, "work_days", "ZJ", "normal", "路面坑槽、破损面积≥1平方米"),
    ("C0204", "component", "道路交通", "护栏损坏", 3, "work_days", "JT", "normal", "道路护栏、隔离栏损坏、倒伏"),
    ("C0205", "component", "道路交通", "交通标志损坏", 3, "work_days", "JT", "normal", "交通标志、标线缺失、损坏"),
    ("C0206", "component", "道路交通", "公交站亭损坏", 5, "work_days", "JT", "normal", "公交站亭、站牌损坏"),
    ("C0207", "component", "道路交通", "人行道板破损", 5, "work_days", "ZJ", "normal", "人行道板松动、破损≥1平方米"),
    ("C0301", "component", "市容环境", "垃圾桶破损", 2, "work_days", "CG", "normal", "公共垃圾桶破损、缺失"),
    ("C0302", "component", "市容环境", "公厕设施损坏", 2, "work_days", "CG", "normal", "公厕设施损坏或无法使用"),
    ("C0303", "component", "市容环境", "果皮箱缺失", 3, "work_days", "CG", "normal", "果皮箱缺失、倾倒"),
    ("C0304", "component", "市容环境", "垃圾房损坏", 3, "work_days", "CG", "normal", "垃圾房、垃圾收集点设施损坏"),
    ("C0401", "component", "园林绿化", "树木倒伏", 4, "work_hours", "YL", "urgent", "行道树倒伏、断枝，影响通行或安全"),
    ("C0402", "component", "园林绿化", "绿地破坏", 5, "work_days", "YL", "normal", "绿地被踩踏、占用或毁坏≥5平方米"),
    ("C0403", "component", "园林绿化", "行道树缺株", 10, "work_days", "YL", "normal", "行道树缺株、枯死"),
    ("C0404", "component", "园林绿化", "花坛破损", 5, "work_days", "YL", "normal", "花坛、树池破损"),
    ("C0501", "component", "房屋土地", "危房隐患", 3, "work_days", "ZJ", "urgent", "房屋墙体开裂、外墙脱落等安全隐患"),
    ("C0502", "component", "房屋土地", "空置房屋破损", 10, "work_days", "ZJ", "normal", "空置房屋门窗破损、无人管理"),
    ("C0601", "component", "其它设施", "电力设施损坏", 1, "work_days", "GD", "normal", "变压器、电箱损坏或箱门敞开"),
    ("C0602", "component", "其它设施", "健身器材损坏", 5, "work_days", "MZ", "normal", "公共健身器材损坏"),
    ("C0701", "component", "扩展部件", "监控设施损坏", 5, "work_days", "GA", "normal", "公共视频监控设施损坏、离线"),
    ("C0702", "component", "扩展部件", "充电桩损坏", 5, "work_days", "GD", "normal", "公共充电桩损坏"),
    ("C0703", "component", "扩展部件", "智能信包箱损坏", 5, "work_days", "TX", "normal", "小区智能信包箱、快递柜损坏"),
    # community services 社区服务 (governance grids)
    ("S0101", "service", "社区服务", "矛盾纠纷调解", 7, "calendar_days", "MZ", "normal", "邻里、家庭等矛盾纠纷需调解"),
    ("S0102", "service", "社区服务", "独居老人关爱", 3, "calendar_days", "MZ", "normal", "独居、空巢老人需上门探访"),
    ("S0103", "service", "社区服务", "安全隐患排查", 3, "work_days", "GA", "normal", "居民反映的各类安全隐患"),
    ("S0104", "service", "社区服务", "物业管理问题", 5, "work_days", "ZJ", "normal", "无物业小区或物业服务问题"),
]

# Relative frequency of each major class in the demo's year of cases.
CLASS_WEIGHTS = {"市容环境": 30, "宣传广告": 8, "施工管理": 8, "街面秩序": 22, "突发事件": 3, "扩展事件": 6,
                 "公用设施": 6, "道路交通": 6, "园林绿化": 2, "房屋土地": 1, "其它设施": 1, "扩展部件": 1,
                 "社区服务": 6}

"""Domain errors; they carry no HTTP. Each message names the bad value and what would be accepted.

Every error has a `kind` (a machine-readable word: `invalid_input`, `not_found`, `conflict`, ...), the `field` it is
about, `message` (English) and `zh` (the same in Chinese: full-width punctuation, the field named in Chinese).
How a kind is answered (a status, headers, a problem type) is the API's business (api/gridmap_api/errors.py): this
package
names no protocol. `see` names a resource of the catalogue the caller can consult (e.g. `categories`); the API
says where it is. A raise without `zh` gets a Chinese sentence built from the error's kind and the field's Chinese
label (api/gridmap_api/i18n.py), never English in a Chinese answer."""

from __future__ import annotations

import re
from typing import ClassVar


class GridmapError(Exception):
    """Base class of every error gridmap raises on purpose."""

    kind: ClassVar[str] = "error"

    def __init__(
        self, message: str, *, field: str | None = None, zh: str | None = None, see: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message  # English
        self.field = field
        self.zh = zh  # Chinese, or None (then the API builds one from the kind and the field)
        self.see = see  # a resource to consult (e.g. "categories"), or None


class InvalidInput(GridmapError):
    """A value supplied by the caller cannot be accepted."""

    kind = "invalid_input"


class InvalidCoordinate(InvalidInput):
    """A coordinate is missing, not finite, out of range or swapped."""


class UnknownCRS(InvalidInput):
    """A coordinate-system name or EPSG code is not one gridmap accepts."""


class TooLarge(InvalidInput):
    """A value (a file, a batch) is over its size limit."""

    kind = "too_large"


class VersionRequired(InvalidInput):
    """A change must say which version of the object it was based on."""

    kind = "version_required"


class NotFound(GridmapError):
    """No object has the given identifier."""

    kind = "not_found"


class Conflict(GridmapError):
    """The request contradicts what is stored (duplicate code, stale version, wrong state)."""

    kind = "conflict"


class StaleVersion(Conflict):
    """The object changed since the caller read it (the version it names is not the stored one)."""

    kind = "stale_version"


class DatabaseNotReady(GridmapError):
    """The database has no schema or no active boundary generation yet."""

    kind = "database_not_ready"


class Unavailable(GridmapError):
    """A service gridmap relies on (the media store) cannot serve now; nothing was changed."""

    kind = "unavailable"


class Forbidden(GridmapError):
    """The caller's role may not do this at all (function level); objects out of scope are `NotFound` instead."""

    kind = "forbidden"


class Unauthenticated(GridmapError):
    """No valid credentials where the operation needs them, or a failed sign-in."""

    kind = "unauthenticated"


# -- Chinese labels of fields, for messages that name a field given by the caller (and the API's fallback) ----
# (The labels of fields the API takes from elsewhere than the body, such as its credentials, live in
# api/gridmap_api/i18n.py.)

FIELD_ZH: dict[str, str] = {
    "access_token": "访问令牌",
    "account_id": "账号",
    "accuracy_m": "定位精度（米）",
    "action": "操作",
    "activate": "生效日期",
    "activation": "生效",
    "address": "地址",
    "amount": "数量",
    "api_key": "接口密钥",
    "approver": "审批人",
    "area": "区域",
    "area_code": "区域编码",
    "areas": "辖区",
    "as_of": "日期",
    "assignee_id": "承办人",
    "assignments": "人员分配",
    "at": "时间",
    "attachment": "附件",
    "base_id": "基准版本",
    "bbox": "范围（bbox）",
    "bbox_crs": "范围坐标系",
    "body": "请求体",
    "branch": "党支部",
    "branch_id": "党支部",
    "by": "分组方式",
    "candidates": "候选网格",
    "case": "案件",
    "case_id": "案件编号",
    "category": "事项类别",
    "check": "边界检查",
    "code": "编码",
    "code_field": "编码字段",
    "codes": "编码",
    "collectionId": "集合",
    "collection_id": "集合",
    "columns": "列",
    "compound": "小区",
    "compound_id": "小区",
    "contact": "联系方式",
    "coordinates": "坐标",
    "credentials": "凭据",
    "crs": "坐标系",
    "csrf": "防伪令牌",
    "data": "数据",
    "datetime": "日期时间",
    "day": "日期",
    "deadline": "期限",
    "department": "部门",
    "description": "描述",
    "display_name": "显示名称",
    "edit": "编辑",
    "effective_from": "生效日期",
    "effective_to": "失效日期",
    "encoding": "字符编码",
    "evidence": "依据",
    "f": "格式（f）",
    "featureId": "要素编码",
    "feature_id": "要素编码",
    "file": "文件",
    "fmt": "格式",
    "format": "格式",
    "from": "起始",
    "from_": "起始",
    "from_code": "原编码",
    "from_grid": "原网格",
    "from_grids": "原网格",
    "generation": "边界版本",
    "generation_id": "边界版本",
    "geometry": "几何图形",
    "grid": "网格",
    "grids": "网格",
    "holder": "承办人",
    "hours": "小时数",
    "households": "户数",
    "id": "编号",
    "idempotency_key": "幂等键",
    "if_match": "版本条件",
    "into": "并入对象",
    "items": "条目",
    "key": "密钥",
    "key_id": "密钥",
    "kind": "类型",
    "kinds": "类型",
    "lang": "语言",
    "lat": "纬度",
    "latitude": "纬度",
    "layer": "图层",
    "level": "层级",
    "limit": "每页条数",
    "line": "划线",
    "location": "位置",
    "locked": "锁定",
    "lon": "经度",
    "long": "经度",
    "longitude": "经度",
    "max_age_h": "最长时长（小时）",
    "measure": "指标",
    "media": "图片",
    "media_url": "图片地址",
    "min_age_h": "最短时长（小时）",
    "months": "月数",
    "n": "网格数",
    "name": "名称",
    "name_field": "名称字段",
    "near_m": "邻近距离（米）",
    "note": "备注",
    "number": "编号",
    "offset": "起始位置",
    "op": "编辑操作",
    "order": "排序方向",
    "page": "页码",
    "parent": "上级区域",
    "password": "密码",
    "period": "时段",
    "permission": "权限",
    "phone": "电话",
    "population": "人口",
    "q": "搜索词",
    "queue": "队列",
    "rating": "评价",
    "reason": "理由",
    "reporter_name": "报告人姓名",
    "reporter_phone": "报告人电话",
    "reporter_token": "报告人凭证",
    "role": "角色",
    "satisfaction": "满意度",
    "seed": "随机种子",
    "service_code": "事项类别",
    "service_request_id": "诉求编号",
    "since": "起始日期",
    "snap_m": "吸附距离（米）",
    "sort": "排序字段",
    "source": "来源",
    "staff": "人员",
    "staff_id": "人员",
    "stage": "阶段",
    "state": "状态",
    "status": "状态",
    "target": "目标",
    "text": "文字",
    "time_limit": "办理时限",
    "time_unit": "时限单位",
    "title": "标题",
    "to": "目标",
    "to_code": "新编码",
    "to_grid": "目标网格",
    "to_microgrid": "目标微网格",
    "token": "令牌",
    "tolerance": "容差",
    "type": "类型",
    "unit": "单位",
    "units": "单位",
    "until": "截止日期",
    "urgency": "紧急程度",
    "user": "用户",
    "username": "用户名",
    "value": "值",
    "version": "版本号",
    "via": "途经",
    "who": "操作人",
    "year": "年份",
    "zoom": "缩放级别",
    "worker": "网格员",
    "workers": "网格员",
    "file_id": "文件",
    "x": "横坐标",
    "y": "纵坐标",
    "point": "点位",
    "points": "点位",
    "rows": "行",
    "sheet": "工作表",
    "category_code": "事项类别",
    "service_margin_m": "服务边距（米）",
    "scope": "范围",
    "phone_number": "电话",
    "places": "楼栋或小区",
    "external_ref": "外部编号",
    "first_name": "名",
    "last_name": "姓",
    "email": "电子邮箱",
    "jurisdiction_id": "辖区",
    "address_string": "地址",
    "lon/lat": "经纬度",
    "n/tolerance": "网格数与容差",
    "window_h": "时间窗（小时）",
}


def field_zh(field: str | None) -> str:
    """The Chinese label of a field path such as `items.0.lon` or `body`: the label of its last named part (the
    path itself when there is no label)."""
    if not field:
        return "请求"
    if field in FIELD_ZH:
        return FIELD_ZH[field]
    parts = [p for p in re.split(r"[.\[\]]", field) if p and not p.isdigit()]
    for part in reversed(parts):
        if part in FIELD_ZH:
            return f"{FIELD_ZH[part]}（{field}）"
    return field

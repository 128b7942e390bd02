"""The language of an answer: problem details in Chinese (the default) or English, chosen by `Accept-Language`.

* `language(header)`: "zh" unless the header prefers English (q-values honoured; missing, empty or unparseable
  headers give "zh"; a header naming neither language gives "zh").
* `TITLES`: the title of each kind of problem in both languages.
* `FIELD_ZH` / `field_zh(field)`: the Chinese label of a field, for sentences that name it (the `field` member of
  a problem stays the machine-readable name).
* `domain_detail(exc, lang)`: a domain error's text; without `zh` a Chinese sentence from its kind and its field.
* `validation_message(err, lang)`: one pydantic error in words, naming the field and what is accepted, with the
  constraint's values from `ctx`.
"""

from __future__ import annotations

import re

from gridmap import errors as _errors

# The Chinese labels of what the API takes from headers (gridmap names no header; its fields are in gridmap.errors)
HEADER_ZH: dict[str, str] = {
    "Authorization": "Authorization 凭据",
    "Content-Type": "内容类型（Content-Type）",
    "Content-Length": "请求体长度（Content-Length）",
    "Idempotency-Key": "幂等键（Idempotency-Key）",
    "If-Match": "版本条件（If-Match）",
    "X-API-Key": "接口密钥（X-API-Key）",
    "X-Areas": "辖区（X-Areas）",
    "X-CSRF-Token": "防伪令牌（X-CSRF-Token）",
    "X-Role": "角色（X-Role）",
    "X-Staff-Id": "人员编号（X-Staff-Id）",
    "X-User": "用户（X-User）",
    "X-Department": "部门（X-Department）",
}
FIELD_ZH: dict[str, str] = {**_errors.FIELD_ZH, **HEADER_ZH}


def field_zh(field: str | None) -> str:
    """The Chinese label of a field: a header's, else the domain's (gridmap.errors.field_zh)."""
    if field and field in HEADER_ZH:
        return HEADER_ZH[field]
    return _errors.field_zh(field)


ZH, EN = "zh", "en"
DEFAULT = ZH
VARY = "Accept-Language"

_RANGE = re.compile(r"^\s*([A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*|\*)\s*(?:;\s*q\s*=\s*([0-9](?:\.[0-9]{0,3})?))?\s*$")


def language(header: str | None) -> str:
    """The language to answer in for an `Accept-Language` header (RFC 9110 §12.5.4): the supported language with
    the highest q-value, the first listed on a tie; zh when the header is missing, unparseable or names neither."""
    if not header or len(header) > 512:
        return DEFAULT
    best, best_q = None, 0.0
    for part in header.split(","):
        if not part.strip():
            continue
        m = _RANGE.match(part)
        if not m:
            return DEFAULT  # unparseable: the default, not a guess from half a header
        tag, q = m.group(1).lower(), float(m.group(2)) if m.group(2) is not None else 1.0
        if q > 1:
            return DEFAULT
        primary = tag.split("-")[0]
        lang = ZH if primary == "zh" else EN if primary == "en" else DEFAULT if primary == "*" else None
        if lang is not None and q > best_q:
            best, best_q = lang, q
    return best or DEFAULT


def of_request(request) -> str:
    """The language of a Starlette request (or of an ASGI scope's headers)."""
    headers = getattr(request, "headers", None)
    if headers is not None:
        return language(headers.get("accept-language"))
    for name, value in request.get("headers", ()):
        if name == b"accept-language":
            return language(value.decode("latin-1"))
    return DEFAULT


def has_cjk(text: str) -> bool:
    return any("\u4e00" <= c <= "\u9fff" for c in text)


# -- titles ------------------------------------------------------------------------------------------------------

TITLES: dict[int | str, tuple[str, str]] = {  # key → (zh, en)
    400: ("请求有误", "Bad request"),
    401: ("未登录或凭据无效", "Unauthorized"),
    403: ("无权执行此操作", "Forbidden"),
    404: ("未找到", "Not found"),
    405: ("不支持此请求方法", "Method not allowed"),
    406: ("无法提供所要求的格式", "Not acceptable"),
    409: ("与现有数据冲突", "Conflict"),
    412: ("版本不符", "Precondition failed"),
    413: ("请求体过大", "Payload too large"),
    415: ("不支持的内容类型", "Unsupported media type"),
    422: ("输入无效", "Invalid input"),
    428: ("须注明所依据的版本", "Precondition required"),
    429: ("请求过于频繁", "Too many requests"),
    500: ("服务器内部错误", "Internal server error"),
    503: ("数据库尚未就绪", "Database not ready"),
    "malformed_json": ("JSON 格式错误", "Malformed JSON"),
    "malformed_body": ("请求体无法读取", "Malformed body"),
    "bad_content_length": ("请求有误", "Bad request"),
}


def title(key: int | str, lang: str) -> str:
    zh, en = TITLES.get(key) or TITLES[400]
    return zh if lang == ZH else en


# What a status means when nothing more specific is known (Starlette's own 404 and 405, …).
HTTP_DETAIL: dict[int, tuple[str, str]] = {
    400: ("请求有误，请检查后重试。", "The request is not valid."),
    401: ("请先登录，或提供有效的凭据。", "Sign in, or send valid credentials."),
    403: ("当前账号无权执行此操作。", "This account may not do this."),
    404: ("没有这个地址对应的资源，请检查网址。", "Nothing is found at this path."),
    405: ("此地址不支持该请求方法。", "This path does not accept this method."),
    406: ("无法以所要求的格式提供。", "The requested format cannot be served."),
    409: ("与现有数据冲突。", "The request conflicts with what is stored."),
    413: ("请求体过大。", "The request body is too large."),
    415: ("不支持此内容类型。", "This content type is not accepted."),
    429: ("请求过于频繁，请稍后再试。", "Too many requests; try again later."),
    500: ("服务器内部错误，请稍后再试。", "Internal server error; try again later."),
    503: ("服务暂不可用，请稍后再试。", "The service is not available; try again later."),
}


def http_detail(status: int, lang: str) -> str:
    zh, en = HTTP_DETAIL.get(status, HTTP_DETAIL[500 if status >= 500 else 400])
    return zh if lang == ZH else en


# -- domain errors -----------------------------------------------------------------------------------------------

_KIND_ZH = {  # class name → a sentence about the field (`{f}`: its label) for raises without zh
    "VersionRequired": "请注明修改所依据的版本号（{f}）。",
    "PreconditionFailed": "{f}：对象已被他人修改，请刷新后重试。",
    "StaleVersion": "{f}：对象已被他人修改，请刷新后重试。",
    "Claimed": "{f}：已被其他操作抢先修改，请刷新后重试。",
    "InvalidCoordinate": "{f}：坐标无效，请提供范围内的经度和纬度。",
    "UnknownCRS": "{f}：不支持此坐标系，请使用 WGS84、GCJ-02、BD-09 或 CGCS2000 等受支持的坐标系。",
    "ImportRefused": "{f}：文件无法导入，请检查文件内容。",
    "InvalidInput": "{f}：值不被接受，请检查后重试。",
    "NotFound": "没有找到对应的{f}。",
    "Conflict": "{f}：与现有数据冲突，请刷新后重试。",
    "DatabaseNotReady": "数据库尚未就绪（尚未建表或尚未导入边界），请稍后再试。",
    "Forbidden": "当前账号无权执行此操作。",
    "Unauthenticated": "请先登录，或提供有效的凭据。",
    "GridmapError": "{f}：请求无法处理。",
}


def domain_detail(exc, lang: str) -> str:
    """The text of a gridmap error in `lang`: its own `zh` in Chinese, else a sentence from its kind and field."""
    if lang != ZH:
        return exc.message
    if getattr(exc, "zh", None):
        return exc.zh
    for cls in type(exc).__mro__:
        if cls.__name__ in _KIND_ZH:
            return _KIND_ZH[cls.__name__].format(f=field_zh(exc.field))
    return _KIND_ZH["GridmapError"].format(f=field_zh(exc.field))  # pragma: no cover - every error is one


# -- validation errors (pydantic) --------------------------------------------------------------------------------

_ZH_TEMPLATES: dict[str, str] = {
    "missing": "缺少必填项「{f}」。",
    "extra_forbidden": "不接受字段「{f}」，请删除该字段。",
    "string_too_short": "「{f}」至少 {min_length} 个字符。",
    "string_too_long": "「{f}」最多 {max_length} 个字符。",
    "too_short": "「{f}」至少 {min_length} 项。",
    "too_long": "「{f}」最多 {max_length} 项。",
    "bytes_too_short": "「{f}」至少 {min_length} 字节。",
    "bytes_too_long": "「{f}」最多 {max_length} 字节。",
    "greater_than": "「{f}」应大于 {gt}。",
    "greater_than_equal": "「{f}」应大于或等于 {ge}。",
    "less_than": "「{f}」应小于 {lt}。",
    "less_than_equal": "「{f}」应小于或等于 {le}。",
    "multiple_of": "「{f}」应为 {multiple_of} 的倍数。",
    "int_parsing": "「{f}」应为整数。",
    "int_type": "「{f}」应为整数。",
    "int_from_float": "「{f}」应为整数，不能有小数部分。",
    "int_parsing_size": "「{f}」超出整数范围。",
    "float_parsing": "「{f}」应为数字。",
    "float_type": "「{f}」应为数字。",
    "finite_number": "「{f}」应为有限的数字。",
    "decimal_parsing": "「{f}」应为数字。",
    "decimal_type": "「{f}」应为数字。",
    "bool_parsing": "「{f}」应为 true 或 false。",
    "bool_type": "「{f}」应为 true 或 false。",
    "string_type": "「{f}」应为文字。",
    "string_unicode": "「{f}」应为有效的 Unicode 文字。",
    "string_pattern_mismatch": "「{f}」格式不符，应匹配 {pattern}。",
    "literal_error": "「{f}」的值不被接受，可选：{expected}。",
    "enum": "「{f}」的值不被接受，可选：{expected}。",
    "json_invalid": "请求体不是有效的 JSON。",
    "json_type": "「{f}」应为 JSON 文本。",
    "value_error": "「{f}」的值无效。",
    "assertion_error": "「{f}」的值无效。",
    "url_parsing": "「{f}」应为有效的网址。",
    "url_type": "「{f}」应为网址。",
    "url_scheme": "「{f}」的网址协议不被接受，可选：{expected_schemes}。",
    "url_too_long": "「{f}」的网址最多 {max_length} 个字符。",
    "date_parsing": "「{f}」应为日期，如 2026-01-31。",
    "date_from_datetime_parsing": "「{f}」应为日期，如 2026-01-31。",
    "date_from_datetime_inexact": "「{f}」应为日期，不能带时刻。",
    "date_type": "「{f}」应为日期，如 2026-01-31。",
    "datetime_parsing": "「{f}」应为日期时间，如 2026-01-31T08:00:00+08:00。",
    "datetime_from_date_parsing": "「{f}」应为日期时间，如 2026-01-31T08:00:00+08:00。",
    "datetime_type": "「{f}」应为日期时间，如 2026-01-31T08:00:00+08:00。",
    "timezone_aware": "「{f}」应带时区，如 2026-01-31T08:00:00+08:00。",
    "time_parsing": "「{f}」应为时刻，如 08:30。",
    "time_delta_parsing": "「{f}」应为时长。",
    "uuid_parsing": "「{f}」应为 UUID。",
    "uuid_type": "「{f}」应为 UUID。",
    "dict_type": "「{f}」应为 JSON 对象。",
    "model_type": "「{f}」应为 JSON 对象。",
    "model_attributes_type": "「{f}」应为 JSON 对象。",
    "list_type": "「{f}」应为列表。",
    "tuple_type": "「{f}」应为列表。",
    "set_type": "「{f}」应为不重复的列表。",
    "iterable_type": "「{f}」应为列表。",
    "none_required": "「{f}」应为空。",
    "bytes_type": "「{f}」应为字节串。",
    "union_tag_invalid": "「{f}」的类型标记不被接受，可选：{expected_tags}。",
    "union_tag_not_found": "「{f}」缺少类型标记 {discriminator}。",
    "frozen_field": "「{f}」不能修改。",
    "is_instance_of": "「{f}」的值类型不被接受。",
    "callable_type": "「{f}」的值类型不被接受。",
    "year_range": "「{f}」须在 {first}–{last} 年之间。",  # api/gridmap_api/params.py
}
_ZH_OTHER = "「{f}」的值不符合要求。"


def _ctx_text(value) -> str:
    text = str(value)
    return text.replace("', '", "'、'").replace(" or ", " 或 ") if isinstance(value, str) else text


def validation_message(err: dict, field: str, lang: str) -> str:
    """One pydantic error in `lang`: English is pydantic's own message; Chinese names the field by its label and
    what is accepted, with the constraint values of `ctx` (a value_error keeps the validator's Chinese, if any)."""
    if lang != ZH:
        return err.get("msg", "")
    kind = err.get("type", "")
    ctx = {k: _ctx_text(v) for k, v in (err.get("ctx") or {}).items()}
    label = field_zh(field)
    if kind in ("value_error", "assertion_error"):
        said = str((err.get("ctx") or {}).get("error", ""))
        if has_cjk(said):
            return f"「{label}」：{said}"
    template = _ZH_TEMPLATES.get(kind, _ZH_OTHER)
    try:
        return template.format(f=label, **ctx)
    except (KeyError, IndexError, ValueError):
        return _ZH_OTHER.format(f=label)

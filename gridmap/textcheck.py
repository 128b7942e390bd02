"""Checks for text that people type (titles, descriptions, addresses, names, phones), the same for every channel.

`clean_text` looks at the length FIRST, before any normalisation or matching, so that a megabyte of text costs a
`len()` and nothing more; then it refuses what no honest report contains and what hurts whoever reads it later:

* NUL and other control characters (C0, DEL, C1; in multi-line text a line feed and a tab are kept, and CR LF or
  a lone CR becomes a line feed), lone surrogates, and in one-line text the Unicode line and paragraph separators;
* bidirectional overrides and isolates (U+202A–202E, U+2066–2069): they make "txt.exe" read "exe.txt" and
  reorder an address on a dispatcher's screen;
* text that is empty once whitespace and invisible characters (zero-width space/joiners, word joiner, BOM, soft
  hyphen, Hangul fillers …) are taken away.

What is kept is put in Unicode NFC (one code point for é whether it was typed as one or two).

`clean_phone` takes ASCII digits only (with an optional leading +86 / 0086 and spaces, hyphens or brackets, which
are removed): Arabic-Indic, full-width and other Unicode digits pass `str.isdigit()` but no telephone exchange
dials them, and they let one number be stored under many spellings.

Messages name the field and the limit and never repeat the value (it may be personal data, or a megabyte).
"""

from __future__ import annotations

import re
import unicodedata

from gridmap.errors import InvalidInput, field_zh

BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# invisible characters that make a blank title look filled in
INVISIBLE = frozenset(
    "\u200b\u200c\u200d\u2060\ufeff\u00ad\u034f\u115f\u1160\u17b4\u17b5\u180e\u2061\u2062\u2063\u2064\u3164\uffa0"
)
LINE_SEPARATORS = frozenset("\u2028\u2029")
PHONE_MIN, PHONE_MAX = 7, 15
MAX_ADDRESS = 300  # an address, wherever it comes from, before the gazetteer sees it
_PHONE_SEPARATORS = re.compile(r"[ \-()（）]")


def _where(field: str, i: int, ch: str) -> str:
    return f"{field}: character {i + 1} is U+{ord(ch):04X} ({unicodedata.name(ch, 'a control character')})"


def clean_text(
    value: object, field: str, max_len: int, *, multiline: bool = False, required: bool = True
) -> str | None:
    """`value` checked and in NFC, or `InvalidInput` naming `field`. None stays None; text that is blank once
    whitespace and invisible characters are removed is refused when `required`, else becomes None."""
    if value is None:
        if required:
            raise InvalidInput(
                f"{field}: required; 1 to {max_len} characters",
                field=field,
                zh=f"{field_zh(field)}为必填项，应为 1–{max_len} 个字符。",
            )
        return None
    if not isinstance(value, str):
        raise InvalidInput(
            f"{field}: must be text, not {type(value).__name__}", field=field, zh=f"{field_zh(field)}应为文字。"
        )
    if len(value) > max_len:  # before anything else touches it
        raise InvalidInput(
            f"{field}: {len(value):,} characters is too long; at most {max_len:,}",
            field=field,
            zh=f"{field_zh(field)}过长：{len(value):,} 个字符，最多 {max_len:,} 个。",
        )
    if multiline and "\r" in value:
        value = value.replace("\r\n", "\n").replace("\r", "\n")
    allowed = "\n\t" if multiline else ""
    visible = False
    for i, ch in enumerate(value):
        if ch in BIDI_CONTROLS:
            raise InvalidInput(
                f"{_where(field, i, ch)}: bidirectional override and isolate characters are not accepted; remove them",
                field=field,
                zh=f"{field_zh(field)}的第 {i + 1} 个字符 U+{ord(ch):04X} 是双向文本控制字符，不被接受，请删除。",
            )
        category = unicodedata.category(ch)
        if (category == "Cc" and ch not in allowed) or category == "Cs" or (ch in LINE_SEPARATORS and not multiline):
            kind = "a line break" if ch in "\n\r" or ch in LINE_SEPARATORS else "a control character"
            accepted = "; line breaks and tabs are accepted" if multiline else "; one line of printable text"
            raise InvalidInput(
                f"{_where(field, i, ch)}, {kind}, which is not accepted here{accepted}",
                field=field,
                zh=f"{field_zh(field)}的第 {i + 1} 个字符 U+{ord(ch):04X} "
                f"是{('换行符' if kind == 'a line break' else '控制字符')}，"
                "此处不接受"
                f"{('（可以有换行和制表符）' if multiline else '；应为一行可打印的文字')}。",
            )
        if not visible and not ch.isspace() and ch not in INVISIBLE:
            visible = True
    if not visible:
        if required:
            raise InvalidInput(
                f"{field}: empty (only spaces or invisible characters); 1 to {max_len} visible characters",
                field=field,
                zh=f"{field_zh(field)}为空（只有空格或不可见字符），应为 1–{max_len} 个可见字符。",
            )
        return None
    value = unicodedata.normalize("NFC", value)
    if len(value) > max_len:  # NFC may (rarely) lengthen a text
        raise InvalidInput(
            f"{field}: {len(value):,} characters is too long; at most {max_len:,}",
            field=field,
            zh=f"{field_zh(field)}过长：{len(value):,} 个字符，最多 {max_len:,} 个。",
        )
    return value


def clean_phone(value: object, field: str) -> str | None:
    """A phone number as ASCII digits only, 7 to 15 of them (a leading +86 or 0086, and spaces, hyphens and
    brackets are dropped), or None for None/blank; else `InvalidInput` naming `field` without the number."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(
            f"{field}: must be text, not {type(value).__name__}", field=field, zh=f"{field_zh(field)}应为文字。"
        )
    if len(value) > 32:
        raise InvalidInput(
            f"{field}: {len(value):,} characters is too long for a phone number; 7 to 15 digits, "
            "e.g. 13812341234 or 0871-63123456",
            field=field,
            zh=f"{field_zh(field)}过长（{len(value):,} 个字符），不是电话号码；应为 7–15 位数字，如 "
            "13812341234 或 0871-63123456。",
        )
    text = _PHONE_SEPARATORS.sub("", value.strip())
    if not text:
        return None
    if text.startswith("+86"):
        text = text[3:]
    elif text.startswith("0086"):
        text = text[4:]
    if any(ch.isdigit() and not ("0" <= ch <= "9") for ch in text):
        raise InvalidInput(
            f"{field}: digits other than 0-9 (e.g. Arabic-Indic or full-width digits) are not "
            "accepted; 7 to 15 digits 0-9, e.g. 13812341234",
            field=field,
            zh=f"{field_zh(field)}只接受半角数字 0–9（不接受全角数字等），应为 7–15 位，如 13812341234。",
        )
    if not (text.isascii() and text.isdigit() and PHONE_MIN <= len(text) <= PHONE_MAX):
        raise InvalidInput(
            f"{field}: not a phone number ({len(text)} characters); 7 to 15 digits 0-9, e.g. "
            "13812341234 or 0871-63123456",
            field=field,
            zh=f"{field_zh(field)}不是电话号码（{len(text)} 个字符）；应为 7–15 位数字，如 "
            "13812341234 或 0871-63123456。",
        )
    return text

"""Every error gridmap and the API raise on purpose carries its Chinese text (`zh=`): the API answers in Chinese by
default and must never fall back to English. The AST of gridmap/ and api/ is walked for constructions of
GridmapError and its subclasses; each must pass `zh=` (ImportRefused takes its Chinese positionally)."""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

import pytest

from gridmap import errors

ROOT = Path(__file__).resolve().parents[2]
# ImportRefused(file, field, zh, en, ...) has the Chinese as a required argument
ZH_POSITIONAL = {"ImportRefused"}


@functools.cache
def _error_classes() -> frozenset[str]:
    """Names of GridmapError and every subclass defined in gridmap/ and api/ (found in the source, so a new module
    is covered without importing it)."""
    names = {cls.__name__ for cls in (errors.GridmapError, *errors.GridmapError.__subclasses__())}
    bases: dict[str, set[str]] = {}
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                bases[node.name] = {
                    b.attr if isinstance(b, ast.Attribute) else getattr(b, "id", "") for b in node.bases
                }
    grown = True
    while grown:
        grown = False
        for name, parents in bases.items():
            if name not in names and parents & names:
                names.add(name)
                grown = True
    return frozenset(names)


def _sources() -> list[Path]:
    return sorted(p for d in ("gridmap", "api") for p in (ROOT / d).rglob("*.py") if "migrations" not in p.parts)


def missing_zh() -> list[str]:
    """`path:line Class` of every construction of a gridmap error without Chinese text."""
    classes = _error_classes()
    found = []
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
            if name not in classes or name in ZH_POSITIONAL:
                continue
            if any(k.arg == "zh" for k in node.keywords) or any(k.arg is None for k in node.keywords):
                continue  # zh= given, or passed on with **kwargs
            found.append(f"{path.relative_to(ROOT)}:{node.lineno} {name}")
    return found


def test_every_gridmap_error_is_raised_with_chinese_text():
    left = missing_zh()
    assert not left, f"{len(left)} raise sites without zh=:\n" + "\n".join(left)


MIXED = re.compile(r"[\u4e00-\u9fff][^()（）]*\s\([a-z]")  # "中文 (english": Chinese, then English in brackets


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_mixed_chinese_english_messages(path):
    """The English message of an error is English: its Chinese goes in `zh=` (no "中文 (english)" any more;
    Chinese values or examples inside an English sentence are fine)."""
    classes = _error_classes()
    mixed = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and node.args:
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
            if name in classes and name not in ZH_POSITIONAL:
                literal = "".join(
                    v.value for v in ast.walk(node.args[0]) if isinstance(v, ast.Constant) and isinstance(v.value, str)
                )
                if MIXED.search(literal):
                    mixed.append(f"{node.lineno}: {literal[:80]}")
    assert not mixed, mixed

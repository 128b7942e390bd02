"""Bulk import of 12345 hotline exports (CSV or XLSX, as the city platform writes them).

Every row of the file gets exactly one outcome in the report, nothing is dropped silently:

* `created` — a new case (source `hotline`, `external_ref` = the ticket number, `reported_at` = the call time),
  placed by its coordinates or, for address-only rows, through the gazetteer; filed and routed by the rules when
  the category is known, else left `reported` for a dispatcher to file (`category_not_matched`);
* `duplicate` — the ticket was imported before (or appears earlier in the same file): nothing new is made, so
  re-importing a file, or a longer export overlapping an earlier one, is safe;
* `unplaced` — neither the coordinates nor the address give a place in the service area; the reason says why.
  Correct the address and import the file again: the rows already imported come back as duplicates;
* `invalid` — a field cannot be read (the report names it and says what would be accepted).

The file is read with bounded memory whatever it holds (`gridmap.io.tabular`): an XLSX is refused when its zip is
unsafe (member names, a zip bomb's sizes or ratios), rows are streamed, at most `MAX_ROWS`; a cell longer than
`MAX_CELL` characters is never held as text, and its row is reported invalid with the field — the other rows of
the export are still imported, which is what a dispatcher wants from a 5,000-row export with one pasted-in
transcript (a file refused whole would hold up the other 4,999 calls). Every text is checked as every intake's
text is (`gridmap.textcheck`: length first, control and bidi characters, invisible-only text) before any
address reaches the gazetteer.

Columns are recognised by the headings 12345 platforms use (工单编号, 来电时间, 来电人, 联系电话, 事发地址, 诉求内容,
问题分类, 经度, 纬度, …) or by gridmap's own names (ticket, reported_at, …); see `COLUMNS`. Times without a zone are
China Standard Time. Coordinates are GCJ-02 by default (the map pickers of hotline platforms), `crs` says otherwise.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy import orm
from sqlalchemy.orm import Session

from gridmap.cases.bulk import Bar, Created, PreparedCases, Progress, create_cases, prepare_cases, write_cases
from gridmap.cases.intake import MAX_TEXT, NewCase, create_case
from gridmap.errors import GridmapError, InvalidInput
from gridmap.geo import crs as gcrs
from gridmap.geo.index import AreaIndex
from gridmap.io import tabular
from gridmap.locating.batch import locate_columns
from gridmap.store.tables import Case, CaseCategory
from gridmap.textcheck import MAX_ADDRESS, clean_phone, clean_text

SOURCE = "hotline"
CST = dt.timezone(dt.timedelta(hours=8))
MAX_ROWS = 100_000
MAX_CELL = MAX_TEXT  # the longest field (诉求内容, a case's description); a longer cell makes its row invalid
MAX_FILE_BYTES = 100 * 1024 * 1024  # the command line's limit (the API takes at most 20 MB)
TEXT_LIMITS = {"ticket": 64, "reporter_name": 64, "address": MAX_ADDRESS, "title": 200, "description": MAX_TEXT}
BATCH = 200  # rows per transaction, row by row (`bulk=False`)
BULK_BATCH = 2_000  # rows per transaction, in bulk
LOW_CONFIDENCE = 0.75
COLUMNS = {
    "ticket": ("工单编号", "工单号", "受理编号", "编号", "ticket"),
    "reported_at": ("来电时间", "受理时间", "登记时间", "诉求时间", "reported_at"),
    "reporter_name": ("来电人", "诉求人", "联系人", "姓名", "reporter_name"),
    "reporter_phone": ("联系电话", "来电号码", "电话", "reporter_phone"),
    "address": ("事发地址", "问题地址", "诉求地址", "地址", "address"),
    "description": ("诉求内容", "问题描述", "工单内容", "内容", "description"),
    "title": ("工单标题", "标题", "title"),
    "category": ("问题分类", "诉求分类", "事项分类", "分类", "category"),
    "lon": ("经度", "lon", "longitude"),
    "lat": ("纬度", "lat", "latitude"),
}
REPORT_COLUMNS = [
    "row",
    "ticket",
    "status",
    "case_number",
    "grid_code",
    "method",
    "address_confidence",
    "field",
    "reason",
]
UNPLACED_REASONS = {
    "address_not_matched": "address: no compound, building, road number or service centre matches it",
    "address_community_only": "address: names only a community; give a compound, building or road and number",
    "invalid_coordinate": "lon/lat: not a valid coordinate",
    "outside_service_area": "lon/lat: far outside the service area (check crs and the order of lon and lat)",
    "no_location_given": "address: empty, and no coordinates",
    "outside_all_grids": "lon/lat: outside every grid",
}


def read_export(data: bytes, fmt: str) -> pd.DataFrame:
    """The rows of an export as a frame indexed by their row number in the file (the headings being row 1):
    cells as read (text; numbers and times from XLSX), a cell over `MAX_CELL` characters as `tabular.TooLong`."""
    if not data:
        raise InvalidInput(
            "file: empty; send a 12345 export as CSV or XLSX",
            field="file",
            zh="文件为空；请上传 CSV 或 XLSX 格式的 12345 导出文件。",
        )
    if fmt == "xlsx":
        headings, rows = tabular.read_xlsx_rows(data, label="the export", max_rows=MAX_ROWS, max_cell=MAX_CELL)
    elif fmt == "csv":
        headings, rows = tabular.read_csv_rows(data, label="the export", max_rows=MAX_ROWS, max_cell=MAX_CELL)
    else:
        raise InvalidInput(
            f"format: {fmt!r}; accepted: csv, xlsx", field="format", zh=f"格式：{fmt!r} 不被接受；可选：csv、xlsx。"
        )
    if not headings:
        raise InvalidInput(
            "file: no headings and no rows; send a 12345 export as CSV or XLSX",
            field="file",
            zh="文件没有表头也没有数据行；请上传 CSV 或 XLSX 格式的 12345 导出文件。",
        )
    names: list[str] = []
    for j, heading in enumerate(headings, start=1):
        name = (
            f"(column {j}: too long)"
            if isinstance(heading, tabular.TooLong)
            else f"column {j}"
            if heading is None or str(heading).strip() == ""
            else str(heading).strip()
        )
        while name in names:  # two columns with one heading: the second is name.1 (as pandas names them)
            name += ".1"
        names.append(name)
    frame = pd.DataFrame([values for _, values in rows], columns=names, dtype=object)
    frame.index = [number for number, _ in rows]
    return frame


def _columns(frame: pd.DataFrame) -> dict[str, str]:
    """Our field → the file's heading."""
    headings = {str(c).strip(): c for c in frame.columns}
    found = {}
    for fld, names in COLUMNS.items():
        for name in names:
            if name in headings:
                found[fld] = headings[name]
                break
    missing = [f"{fld} ({COLUMNS[fld][0]})" for fld in ("ticket", "reported_at") if fld not in found]
    if "address" not in found and not ("lon" in found and "lat" in found):
        missing.append("address (事发地址) or lon and lat (经度, 纬度)")
    if missing:
        shown = ", ".join(str(h)[:40] for h in list(headings)[:30]) + (" …" if len(headings) > 30 else "")
        raise InvalidInput(
            f"columns: missing {', '.join(missing)}; found {shown}",
            field="columns",
            zh=f"列：缺少 {'、'.join(missing)}；文件中的列：{shown}。",
        )
    return found


def _text(value: object) -> str:
    if isinstance(value, tabular.TooLong):
        return ""  # never stands in for the text; rows holding one are invalid (`_check_row`)
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NaT:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # an XLSX cell typed as a number
    return str(value).strip()


_TIME_FORMATS = (
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d %H:%M",
    "%Y-%m-%dT%H:%M:%S",
    "%Y年%m月%d日 %H:%M:%S",
    "%Y年%m月%d日 %H:%M",
    "%Y%m%d%H%M%S",
)


def parse_time(value: object, now: dt.datetime) -> dt.datetime:
    """A call time: a datetime cell, or text in the usual formats; no zone means China Standard Time."""
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if isinstance(value, dt.datetime):
        when = value
    else:
        text = _text(value)
        read: dt.datetime | None = None
        try:
            read = dt.datetime.fromisoformat(text)
        except ValueError:
            for fmt in _TIME_FORMATS:
                try:
                    read = dt.datetime.strptime(text, fmt)
                    break
                except ValueError:
                    continue
        if read is None:
            raise ValueError(
                f"{text!r} is not a time such as 2026-11-20 09:15:00"
                if text
                else "empty; the call time is required, e.g. 2026-11-20 09:15:00"
            )
        when = read
    when = when.replace(tzinfo=CST) if when.tzinfo is None else when
    when = when.astimezone(dt.UTC)
    if when > now + dt.timedelta(minutes=5):
        raise ValueError(f"{when.astimezone(CST):%Y-%m-%d %H:%M} is in the future")
    if when.year < 2000:
        raise ValueError(f"{when.astimezone(CST):%Y-%m-%d} is before 2000")
    return when


def _check_row(values: dict[str, Any], columns: dict[str, Any]) -> tuple[dict[str, Any], tuple[str | None, str] | None]:
    """The row's texts checked (too-long cells, then `textcheck` as for every intake) and its phone: (the
    clean texts and phone, None) or ({}, (field, reason)). The reason never repeats the value."""
    for fld, heading in columns.items():
        value = values[heading]
        if isinstance(value, tabular.TooLong):
            limit = TEXT_LIMITS.get(fld, MAX_CELL)
            return {}, (fld, f"{heading}: {value.length:,} characters; at most {limit:,}")
    clean: dict[str, Any] = {}
    try:
        for fld, limit in TEXT_LIMITS.items():
            text = _text(values[columns[fld]]) if fld in columns else ""
            clean[fld] = clean_text(text, fld, limit, multiline=fld == "description", required=False)
        phone = _text(values[columns["reporter_phone"]]) if "reporter_phone" in columns else ""
        clean["reporter_phone"] = clean_phone(phone, "reporter_phone")
    except InvalidInput as exc:
        return {}, (exc.field, exc.message)
    return clean, None


def import_export(
    sessionmaker: orm.sessionmaker[Session],
    index: AreaIndex,
    data: bytes,
    fmt: str,
    *,
    crs: str = "gcj02",
    actor: str = "hotline-import",
    now: dt.datetime | None = None,
    bulk: bool = True,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Import one export; returns the counts and the report (one entry per row, in file order).

    The cases are written `BULK_BATCH` at a time through `gridmap.cases.bulk.create_cases` (one transaction and a few
    multi-row statements per batch); `bulk=False` writes them as before, one ORM intake (`create_case`) per row
    in transactions of `BATCH` (kept as the yardstick: both give the same cases). `progress` reports the stages
    and a bar of rows written (the command line's; off by default)."""
    now = now or dt.datetime.now(dt.UTC)
    progress = progress or Progress(enabled=False)
    gcrs.parse_crs(crs)  # a bad crs is refused before anything is read
    frame = read_export(data, fmt)
    columns = _columns(frame)
    progress.stage("read rows", len(frame))
    rows = [dict(zip(frame.columns, row)) for row in frame.itertuples(index=False)]
    checked = [_check_row(values, columns) for values in rows]
    usable = [problem is None for _, problem in checked]
    with sessionmaker() as session:
        categories = _categories(session)
        known = _imported(session, [_text(v) for v in frame[columns["ticket"]]])
    report: list[dict[str, Any]] = [
        {
            "row": int(number),
            "ticket": _text(values[columns["ticket"]])[:64],
            "status": None,
            "case_number": None,
            "grid_code": None,
            "method": None,
            "address_confidence": None,
            "field": None,
            "reason": None,
        }
        for number, values in zip(frame.index, rows)
    ]
    seen: set[str] = set()
    size = BULK_BATCH if bulk else BATCH

    def batches(chunk: int) -> Iterator[list[tuple[dict[str, Any], NewCase]]]:
        """The new cases in batches of `size`, in the file's order, the rows placed `chunk` at a time (placing is
        row by row: the same outcomes however the rows are cut)."""
        todo: list[tuple[dict[str, Any], NewCase]] = []
        for start in range(0, len(rows), chunk):
            stop = min(start + chunk, len(rows))
            with sessionmaker() as session:
                placed = _place(session, index, frame.iloc[start:stop], columns, crs, usable[start:stop])
            for i in range(start, stop):
                new = _new_case(
                    report[i], rows[i], columns, categories, placed[i - start], now, seen, known, checked[i]
                )
                if new is not None:
                    todo.append((report[i], new))
            while len(todo) >= size:
                yield todo[:size]
                todo = todo[size:]
        progress.stage("placed rows", len(frame))
        if todo:
            yield todo

    if bulk and len(rows) > size:  # many batches: each written while the next is placed and prepared
        bar = progress.bar(len(rows), "writing cases", unit="case")
        _create_pipelined(sessionmaker, index, batches(size), actor, now, bar)
    else:
        todo = [item for batch in batches(len(rows) or 1) for item in batch]
        bar = progress.bar(len(todo), "writing cases", unit="case")
        for start in range(0, len(todo), size):
            (_create_bulk if bulk else _create)(sessionmaker, index, todo[start : start + size], actor, now)
            bar.update(len(todo[start : start + size]))
    bar.close()
    progress.stage("stored cases", sum(1 for e in report if e["status"] == "created"))
    counts = {
        status: sum(1 for e in report if e["status"] == status)
        for status in ("created", "duplicate", "unplaced", "invalid")
    }
    return {
        "rows": len(report),
        **counts,
        "category_not_matched": sum(1 for e in report if e["reason"] == "category_not_matched"),
        "report": report,
    }


def _categories(session: Session) -> dict[str, str]:
    """Codes of the categories in use, by code and by minor-class name (a retired one is not matched: the case
    waits for a dispatcher to file it)."""
    rows = session.execute(sa.select(CaseCategory.code, CaseCategory.name).where(CaseCategory.active.is_(True))).all()
    return {**{name: code for code, name in rows}, **{code: code for code, _ in rows}}


_REGISTERED = sa.text(
    "SELECT external_ref, number FROM case_registry WHERE source = :source AND external_ref = ANY(:refs)"
).bindparams(sa.bindparam("refs", type_=sa.ARRAY(sa.String)))


def _imported(session: Session, tickets: list[str]) -> dict[str, str]:
    """Case numbers of tickets already imported: a query per 500 tickets on SQLite (its bound-parameter limit), per
    10,000 on PostgreSQL as one array parameter, asked of the case registry (migration 0010: every case's number
    and ticket, unique across the month partitions, kept by the case table's triggers) — one index, where the case
    table would be asked once per month's partition (28 at the province's 10 M cases: 0.5 s for a day's export
    against 0.08 s)."""
    found: dict[str, str] = {}
    wanted = sorted({t for t in tickets if t})
    postgres = session.get_bind().dialect.name == "postgresql"
    step = 10_000 if postgres else 500
    for start in range(0, len(wanted), step):
        chunk = wanted[start : start + step]
        if postgres:
            rows = session.execute(_REGISTERED, {"source": SOURCE, "refs": chunk})
        else:
            rows = session.execute(
                sa.select(Case.external_ref, Case.number).where(Case.source == SOURCE, Case.external_ref.in_(chunk))
            )
        found.update((ref, number) for ref, number in rows if ref is not None)  # never None: matched a ticket
    return found


PLACED = ("method", "address_confidence", "grid_code", "flags", "lon_wgs84", "lat_wgs84")  # what a row reads


def _place(
    session: Session, index: AreaIndex, frame: pd.DataFrame, columns: dict[str, Any], crs: str, usable: list[bool]
) -> list[dict[str, Any]]:
    """Every usable row (its texts passed `_check_row`) located at once: by coordinates where given, else by
    address (the batch locator's rules); the others are not handed to the gazetteer at all. Per row, the located
    columns it reads (`PLACED`: those of `locate_frame`, the same values) — not the branch, which is not read."""
    where = pd.DataFrame(index=range(len(frame)))
    keep = np.array(usable, dtype=bool)
    addresses = [_text(v) for v in frame[columns["address"]]] if "address" in columns else [""] * len(frame)
    where["address"] = [a if ok else "" for a, ok in zip(addresses, keep)]
    for fld in ("lon", "lat"):
        if fld not in columns:
            where[fld] = np.nan
            continue
        texts = frame[columns[fld]].map(_text).to_numpy()
        numbers = pd.to_numeric(pd.Series(texts), errors="coerce").to_numpy(float, copy=True)
        numbers[np.isnan(numbers) & (texts != "")] = np.inf  # a coordinate written but unreadable is invalid
        numbers[~keep] = np.nan
        where[fld] = numbers
    located = locate_columns(where, index, crs=crs, session=session, branch=False)
    values = [located.column(name).tolist() for name in PLACED]
    return [dict(zip(PLACED, row)) for row in zip(*values)]


def _new_case(
    entry: dict[str, Any],
    values: dict[str, Any],
    columns: dict[str, Any],
    categories: dict[str, Any],
    placed: dict[str, Any],
    now: dt.datetime,
    seen: set[str],
    known: dict[str, str],
    checked: tuple[dict[str, Any], tuple[str | None, str] | None],
) -> NewCase | None:
    """The case of one row, or None with the row's outcome written into `entry`."""

    def fail(status: str, fld: str | None, reason: str) -> None:
        entry.update(status=status, field=fld, reason=reason)

    clean, problem = checked
    ticket = entry["ticket"]
    if problem is not None and problem[0] == "ticket" or not ticket:
        fail("invalid", "ticket", "the ticket number (工单编号) must be 1 to 64 printable characters")
        return None
    if ticket in known or ticket in seen:
        entry.update(
            status="duplicate",
            case_number=known.get(ticket),
            reason="already imported" if ticket in known else "repeats an earlier row of this file",
        )
        return None
    seen.add(ticket)
    try:
        reported_at = parse_time(values[columns["reported_at"]], now)
    except ValueError as exc:
        fail("invalid", "reported_at", f"来电时间 {exc}")
        return None
    if problem is not None:
        fail("invalid", *problem)
        return None
    entry["method"] = placed["method"]
    if "address_confidence" in placed and not pd.isna(placed["address_confidence"]):
        entry["address_confidence"] = round(float(placed["address_confidence"]), 3)
    if placed["method"] == "none" or not placed["grid_code"]:
        placed_flags = [f for f in (placed["flags"] or "").split(";") if f]
        why = next((UNPLACED_REASONS[f] for f in placed_flags if f in UNPLACED_REASONS), "no place found")
        fail("unplaced", why.split(":")[0], why)
        return None
    category_text = _text(values[columns["category"]])[:64] if "category" in columns else ""
    category = categories.get(category_text) if category_text else None
    if category_text and category is None:
        entry["reason"] = "category_not_matched"
    description = clean["description"]
    title = clean["title"] or (description[:30] if description else None) or category_text or "12345 工单"
    flags: tuple[str, ...] = ()
    if placed["method"] == "address":
        low = entry["address_confidence"] is not None and entry["address_confidence"] < LOW_CONFIDENCE
        flags = ("placed_by_address", "address_low_confidence") if low else ("placed_by_address",)
    return NewCase(
        title=title[:200],
        lon=float(placed["lon_wgs84"]),
        lat=float(placed["lat_wgs84"]),
        crs="wgs84",
        category=category,
        description=description,
        source=SOURCE,
        address=clean["address"],
        reporter_name=clean["reporter_name"],
        reporter_phone=clean["reporter_phone"],
        external_ref=ticket,
        reported_at=reported_at,
        extra_flags=flags,
    )


def _create(
    sessionmaker: orm.sessionmaker[Session],
    index: AreaIndex,
    batch: list[tuple[dict[str, Any], NewCase]],
    actor: str,
    now: dt.datetime,
) -> None:
    """One transaction per batch; if another import stored one of its tickets meanwhile, row by row."""
    try:
        with sessionmaker() as session, session.begin():
            made = [create_case(session, index, new, actor=actor, now=now) for _, new in batch]
            numbers = [(case.number, case.grid_code) for case in made]
    except (sa.exc.IntegrityError, GridmapError) as exc:
        if len(batch) > 1:  # find the row: one transaction per row
            for item in batch:
                _create(sessionmaker, index, [item], actor, now)
            return
        entry, new = batch[0]
        if isinstance(exc, GridmapError):  # a row the checks above let through but intake refuses
            entry.update(status="invalid", field=exc.field, reason=exc.message)
            return
        with sessionmaker() as session:
            number = session.scalar(
                sa.select(Case.number).where(Case.source == SOURCE, Case.external_ref == new.external_ref)
            )
        entry.update(status="duplicate", case_number=number, reason="imported meanwhile by another import")
        return
    for (entry, _), (number, grid) in zip(batch, numbers):
        entry.update(status="created", case_number=number, grid_code=grid)


# PostgreSQL's deadlock and serialization failures: two imports of overlapping tickets in different orders wait on
# each other's new keys, and one is stopped; its batch was rolled back whole and is written again
RETRY_STATES = ("40P01", "40001")


def _create_pipelined(
    sessionmaker: orm.sessionmaker[Session],
    index: AreaIndex,
    batches: Iterable[list[tuple[dict[str, Any], NewCase]]],
    actor: str,
    now: dt.datetime,
    bar: Bar,
) -> None:
    """The batches of a bulk import (as they come: their rows placed meanwhile), each prepared here
    (`bulk.prepare_cases`: located, filed, routed, its rows made; through a session of its own that only reads)
    while the one before is written on a thread of its own
    (`bulk.write_cases`, a transaction per batch, in the order of the file): the database's work on a batch —
    PostgreSQL's server process, SQLite's C code, both run without Python's lock — overlaps the making of the next.
    A batch whose write fails as `_create_bulk` retries (a ticket imported meanwhile by another import, a deadlock)
    is written again by `_create_bulk` once the other writes are done; any other error is raised, after the write
    under way has ended."""
    failed: list[list[tuple[dict[str, Any], NewCase]]] = []
    pending: tuple[list[tuple[dict[str, Any], NewCase]], Future[list[Created | GridmapError]]] | None = None
    stopped = threading.Event()  # set by a write that failed otherwise: the writes after it are not made

    def write(prepared: PreparedCases) -> list[Created | GridmapError]:
        if stopped.is_set():
            return []
        try:
            with sessionmaker() as session, session.begin():
                return write_cases(session.connection(), prepared)
        except sa.exc.IntegrityError:
            raise
        except sa.exc.OperationalError as exc:
            if getattr(exc.orig, "sqlstate", None) not in RETRY_STATES:
                stopped.set()
            raise
        except BaseException:
            stopped.set()
            raise

    def settle(batch: list[tuple[dict[str, Any], NewCase]], future: Future[list[Created | GridmapError]]) -> None:
        try:
            made = future.result()
        except sa.exc.IntegrityError:
            failed.append(batch)
            return
        except sa.exc.OperationalError as exc:
            if getattr(exc.orig, "sqlstate", None) not in RETRY_STATES:
                raise
            failed.append(batch)
            return
        _report(batch, made)
        bar.update(len(batch))

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="gridmap-import-writer") as writer:
        try:
            with sessionmaker() as reading:
                for batch in batches:
                    prepared = prepare_cases(reading, index, [new for _, new in batch], actor=actor, now=now)
                    reading.rollback()  # no read transaction held while the writes commit
                    # the writer runs in this context (the audit's acting user, `gridmap.store.audit`)
                    future = writer.submit(contextvars.copy_context().run, write, prepared)
                    if pending is not None:
                        settle(*pending)
                    pending = (batch, future)
            if pending is not None:
                settle(*pending)
        except BaseException:
            stopped.set()  # (an error, Ctrl-C): the writes not started are not made; the one under way ends
            raise
    for batch in failed:
        _create_bulk(sessionmaker, index, batch, actor, now)
        bar.update(len(batch))


def _report(batch: list[tuple[dict[str, Any], NewCase]], made: list[Created | GridmapError]) -> None:
    """The outcomes of a batch written, into its rows' report entries."""
    for (entry, _), outcome in zip(batch, made):
        if isinstance(outcome, GridmapError):  # a row the checks above let through but intake refuses
            entry.update(status="invalid", field=outcome.field, reason=outcome.message)
        else:
            entry.update(status="created", case_number=outcome.number, grid_code=outcome.grid_code)


def _create_bulk(
    sessionmaker: orm.sessionmaker[Session],
    index: AreaIndex,
    batch: list[tuple[dict[str, Any], NewCase]],
    actor: str,
    now: dt.datetime,
) -> None:
    """One transaction for the batch (`bulk.create_cases`); a row intake refuses is reported invalid and the others
    are stored. If another import stored some of its tickets meanwhile, those rows are reported as duplicates and
    the batch is written again without them (row by row, should that not settle it)."""
    for _ in range(3):
        if not batch:
            return
        try:
            with sessionmaker() as session, session.begin():
                made = create_cases(session, index, [new for _, new in batch], actor=actor, now=now)
        except (sa.exc.IntegrityError, sa.exc.OperationalError) as exc:
            retry = isinstance(exc, sa.exc.OperationalError)
            if retry and getattr(exc.orig, "sqlstate", None) not in RETRY_STATES:
                raise
            with sessionmaker() as session:
                meanwhile = _imported(session, [new.external_ref or "" for _, new in batch])
            rest = []
            for entry, new in batch:
                if new.external_ref in meanwhile:
                    entry.update(
                        status="duplicate",
                        case_number=meanwhile[new.external_ref],
                        reason="imported meanwhile by another import",
                    )
                else:
                    rest.append((entry, new))
            if len(rest) == len(batch) and not retry:
                break
            batch = rest
            continue
        _report(batch, made)
        return
    for item in batch:  # not settled by the tickets: find the row, one transaction per row
        _create_bulk_one(sessionmaker, index, item, actor, now)


def _create_bulk_one(
    sessionmaker: orm.sessionmaker[Session],
    index: AreaIndex,
    item: tuple[dict[str, Any], NewCase],
    actor: str,
    now: dt.datetime,
) -> None:
    entry, new = item
    try:
        with sessionmaker() as session, session.begin():
            outcome = create_cases(session, index, [new], actor=actor, now=now)[0]
    except sa.exc.IntegrityError:
        with sessionmaker() as session:
            number = session.scalar(
                sa.select(Case.number).where(Case.source == SOURCE, Case.external_ref == new.external_ref)
            )
        entry.update(status="duplicate", case_number=number, reason="imported meanwhile by another import")
        return
    if isinstance(outcome, GridmapError):
        entry.update(status="invalid", field=outcome.field, reason=outcome.message)
    else:
        entry.update(status="created", case_number=outcome.number, grid_code=outcome.grid_code)


def report_file(result: dict[str, Any], fmt: str) -> bytes:
    """The report as CSV (UTF-8 with a BOM) or XLSX; it holds no personal data, and ticket text that looks like a
    formula is written as text (`gridmap.io.tabular`)."""
    frame = pd.DataFrame(result["report"], columns=REPORT_COLUMNS)
    if fmt == "csv":
        return tabular.csv_bytes(frame)
    return tabular.xlsx_bytes(frame, "import")

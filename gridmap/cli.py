"""The `gridmap` command: init, demo, serve, user, apikey, locate, locate-file, import-hotline, boundaries, measures,
relocate.

This is the program's edge: the one place in the library that reads the environment (`GRIDMAP_DATABASE_URL`).
`serve` starts the server through `gridmap_api.server.serve`, imported when the command runs: no other gridmap module
imports this one or the web stack.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from gridmap.errors import GridmapError

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session

    from gridmap.geo.index import AreaIndex


class _Deferred:
    """A module imported when a command first uses it: `gridmap --help` and `gridmap locate-file` (on boundaries
    whose index file is there) import neither SQLAlchemy nor the ORM. `gridmap.runtime` comes first, so that the
    writes of any command reach running servers too."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        import importlib

        importlib.import_module("gridmap.runtime")
        return getattr(importlib.import_module(self._name), attr)


sa: Any = _Deferred("sqlalchemy")
storage: Any = _Deferred("gridmap.store.engine")


def _engine(args: argparse.Namespace) -> Engine:
    engine: Engine = storage.make_engine(
        storage.database_url_from(args.database or os.environ.get("GRIDMAP_DATABASE_URL"))
    )
    return engine


def cmd_case_partitions(args: argparse.Namespace) -> int:
    """`gridmap case-partitions [--months-ahead N] [--since YYYY-MM]`: make the case table's month partitions
    (PostgreSQL, migration 0010) up to N months ahead (default 12) — run it monthly, and before loading cases of
    months without one; cases of a month without its partition are kept in the DEFAULT partition and moved out by
    this command. Nothing to do on SQLite."""
    from gridmap.store import partitions as case_partitions

    now = dt.datetime.now(dt.UTC)
    since = dt.datetime.strptime(args.since, "%Y-%m").replace(tzinfo=case_partitions.CST) if args.since else now
    until = now + dt.timedelta(days=31 * args.months_ahead)
    with _acting(), storage.session_scope(storage.make_sessionmaker(_engine(args))) as session:
        found = case_partitions.partitions(session)
        if found is None:
            print("the case table is not partitioned here (SQLite, or PostgreSQL before revision 0010)")
            return 0
        made = case_partitions.ensure_months(session, since, until)
    print(f"{made} month partitions made; months up to {case_partitions.month_of(until).name}")
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    """Create or upgrade the schema; on a database with no administrator, create `admin` with a random one-time
    password, printed once (change it with `gridmap user passwd admin --password-stdin`)."""
    from gridmap.access import accounts
    from gridmap.store.tables import Account

    engine = _engine(args)
    storage.migrate(engine)
    print(f"schema at revision {storage.schema_revision(engine)} in {engine.url.render_as_string(hide_password=True)}")
    with _acting(), storage.session_scope(storage.make_sessionmaker(engine)) as session:
        if session.scalar(sa.select(Account.id).where(Account.role == "admin").limit(1)) is None:
            password = accounts.new_password()
            accounts.add_account(session, accounts.AccountSpec("admin", "admin", display_name="系统管理员"), password)
            print(f"administrator account 'admin' created; its one-time password (shown only now): {password}")
    return 0


def _acting() -> AbstractContextManager[None]:
    """The CLI's writes are audited as the operating-system user who ran the command."""
    import getpass

    from gridmap.store import audit

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return audit.acting(f"cli:{user}")


def _password(args: argparse.Namespace) -> tuple[str, bool]:
    """The password from standard input (--password-stdin, first line), or a new random one (to print)."""
    from gridmap.access import accounts

    if getattr(args, "password_stdin", False):
        line = sys.stdin.readline(accounts.MAX_PASSWORD + 2).rstrip("\r\n")
        accounts.check_password(line)
        return line, False
    return accounts.new_password(), True


def cmd_user(args: argparse.Namespace) -> int:
    from gridmap.access import accounts
    from gridmap.store.tables import Account

    factory = storage.make_sessionmaker(_engine(args))
    with _acting(), storage.session_scope(factory) as session:
        if args.user_command == "list":
            for account in accounts.list_accounts(session):
                print(json.dumps(accounts.account_dict(account), ensure_ascii=False))
            return 0
        if args.user_command == "add":
            password, generated = _password(args)
            spec = accounts.AccountSpec(
                args.name, args.role, tuple(args.area or ()), args.department, args.staff_id, args.display_name
            )
            account = accounts.add_account(session, spec, password)
            print(json.dumps(accounts.account_dict(account), ensure_ascii=False))
            if generated:
                print(f"password for {args.name} (shown only now): {password}")
            return 0
        account = session.scalars(sa.select(Account).where(Account.username == args.name)).first()
        if account is None:
            raise ValueError(f"user: no account is named {args.name!r}")
        if args.user_command == "passwd":
            password, generated = _password(args)
            accounts.update_account(session, account.id, password=password)
            print(
                f"password of {args.name} changed; its sessions ended"
                + (f"; new password (shown only now): {password}" if generated else "")
            )
        else:  # disable / enable
            accounts.update_account(session, account.id, active=args.user_command == "enable")
            print(f"{args.name} {args.user_command}d")
    return 0


def cmd_apikey(args: argparse.Namespace) -> int:
    from gridmap.access import accounts
    from gridmap.store.tables import ApiKey

    factory = storage.make_sessionmaker(_engine(args))
    with _acting(), storage.session_scope(factory) as session:
        if args.key_command == "list":
            for key in session.scalars(sa.select(ApiKey).order_by(ApiKey.id)):
                print(json.dumps(accounts.api_key_dict(key), ensure_ascii=False))
        elif args.key_command == "add":
            key, secret = accounts.add_api_key(
                session, args.name, tuple(args.scope), areas=tuple(args.area or ()), created_by="cli"
            )
            print(json.dumps(accounts.api_key_dict(key), ensure_ascii=False))
            print(f"API key (shown only now): {secret}")
        else:
            print(json.dumps(accounts.api_key_dict(accounts.revoke_api_key(session, args.id)), ensure_ascii=False))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from gridmap.cases.bulk import Progress
    from gridmap.demo.load import load_demo
    from gridmap.store.tables import Area

    engine = _engine(args)
    storage.migrate(engine)
    factory = storage.make_sessionmaker(engine)
    from gridmap.demo.accounts import DEMO_PASSWORD, create_demo_accounts

    if args.scale == "province":
        return _demo_province(args, factory)
    with factory() as session:
        if args.if_empty and session.scalar(sa.select(sa.func.count()).select_from(Area)):
            print("the database already holds areas; nothing loaded")
            demo = args.district.split(",")[0] if args.district != "all" else "530111"
            if session.scalar(sa.select(Area.id).where(Area.code == demo).limit(1)) is not None:
                with _acting(), storage.session_scope(factory) as writer:  # a demo database from before accounts
                    made = create_demo_accounts(writer, demo)
                if made:
                    print(f"demo accounts (password {DEMO_PASSWORD!r}): {', '.join(made)}")
            return 0
    today = dt.date.fromisoformat(args.today) if args.today else None
    districts = ["530111", "140213", "511302", "320282"] if args.district == "all" else args.district.split(",")
    for adcode in districts:
        with _acting(), storage.session_scope(factory) as session:
            summary = load_demo(
                session,
                adcode,
                small=args.small,
                seed=args.seed,
                today=today,
                progress=Progress(enabled=not args.no_progress),
            )
        print(json.dumps(summary.__dict__, ensure_ascii=False))
    with _acting(), storage.session_scope(factory) as session:
        made = create_demo_accounts(session, districts[0])
    if made:
        print(f"demo accounts (password {DEMO_PASSWORD!r}): {', '.join(made)}")
    _keep_hours(factory)
    return 0


def _keep_hours(factory: sa.orm.sessionmaker) -> None:
    """The districts' hours to close of the past months, kept for their series (as a server does in the
    background: `measures.keep_close_hours`)."""
    from gridmap.cases.measures import keep_close_hours

    started = time.monotonic()
    months, took = keep_close_hours(factory), time.monotonic() - started
    print(f"办结时长已按月保存 {months} 个月；hours to close kept for {months} months ({took:.1f} s)")


def _demo_province(args: argparse.Namespace, factory: sa.orm.sessionmaker) -> int:
    """`gridmap demo --scale province`: the 16-district province (gridmap.demo.province)."""
    from gridmap.cases.bulk import Progress
    from gridmap.demo.province import ProvinceScale, load_province
    from gridmap.store.tables import Area

    scale = ProvinceScale(districts=args.districts, microgrids=args.microgrids, cases=args.cases)
    scale.check()
    with factory() as session:
        if args.if_empty and session.scalar(sa.select(sa.func.count()).select_from(Area)):
            print("数据库中已有区域，未装入；the database already holds areas; nothing loaded")
            return 0
    today = dt.date.fromisoformat(args.today) if args.today else None
    with _acting():
        summary = load_province(
            factory,
            scale,
            seed=53 if args.seed is None else args.seed,
            today=today,
            append=args.append,
            progress=Progress(enabled=not args.no_progress),
        )
    print(json.dumps(summary.__dict__, ensure_ascii=False))
    from gridmap.demo.accounts import DEMO_PASSWORD, create_demo_accounts
    from gridmap.demo.province import PROVINCE_DISTRICTS

    with _acting(), storage.session_scope(factory) as session:  # the accounts of the first district (昆明五华区)
        made = create_demo_accounts(session, PROVINCE_DISTRICTS[0][0])
    if made:
        print(f"demo accounts (password {DEMO_PASSWORD!r}): {', '.join(made)}")
    _keep_hours(factory)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """`gridmap serve`: the server, started through `gridmap_api.server.serve` (imported here: the web stack is the
    API's, not the library's)."""
    from gridmap_api.server import serve
    from gridmap_api.settings import Settings

    if args.workers < 1:
        raise ValueError(f"--workers: {args.workers} is not a number of processes (1 or more)")
    settings = Settings(database_url=args.database) if args.database else Settings()
    serve(args.host, args.port, workers=args.workers, settings=settings, access_log=args.access_log)
    return 0


def _index(session: Session, as_of: str | None) -> AreaIndex:
    from gridmap.boundaries.areas import load_index
    from gridmap.boundaries.generations import generation_on

    if as_of:
        return load_index(session, generation_on(session, _date("as-of", as_of)).id)
    return load_index(session)


def _date(name: str, text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--{name}: {text!r} is not a date YYYY-MM-DD") from None


def cmd_locate(args: argparse.Namespace) -> int:
    from gridmap.locating.locate import locate

    if args.lon is None and not args.address:
        raise ValueError("give LON LAT, or --address TEXT")
    engine = _engine(args)
    with storage.make_sessionmaker(engine)() as session:
        index = _index(session, args.as_of)
        result = locate(
            session,
            index,
            args.lon,
            args.lat,
            args.crs,
            address=args.address,
            accuracy_m=args.accuracy_m,
            as_of=_date("as-of", args.as_of) if args.as_of else None,
        )
    print(json.dumps(result, ensure_ascii=False, indent=2))
    return 0


def cmd_locate_file(args: argparse.Namespace) -> int:
    from gridmap.locating.batch import locate_file_at

    if args.chunk_rows < 1:
        raise ValueError(f"--chunk-rows: {args.chunk_rows} is not a number of rows (1 or more)")
    # the index of the generation from the file kept per generation and content (read without the ORM when it
    # is there for the active generation's rows as they are now)
    summary = locate_file_at(
        args.database or os.environ.get("GRIDMAP_DATABASE_URL"),
        args.input,
        args.output,
        crs=args.crs,
        near_m=args.near_m,
        as_of=_date("as-of", args.as_of) if args.as_of else None,
        chunk_rows=args.chunk_rows,
        show_progress=False if args.no_progress else None,
    )
    print(json.dumps(summary, ensure_ascii=False))
    return 0


def cmd_import_hotline(args: argparse.Namespace) -> int:
    from pathlib import Path

    from gridmap.boundaries.areas import load_index
    from gridmap.cases.bulk import Progress
    from gridmap.cases.hotline import MAX_FILE_BYTES, import_export, report_file

    path = Path(args.input)
    kind = {".csv": "csv", ".xlsx": "xlsx"}.get(path.suffix.lower())
    if kind is None:
        raise ValueError(f"{path.name}: a 12345 export must be .csv or .xlsx")
    if not path.is_file():
        raise ValueError(f"{path.name}: not a regular file")
    if path.stat().st_size > MAX_FILE_BYTES:  # measured before it is read
        raise ValueError(
            f"{path.name}: {path.stat().st_size:,} bytes; at most {MAX_FILE_BYTES // 2**20} MB per "
            "import, split the export"
        )
    factory = storage.make_sessionmaker(_engine(args))
    with factory() as session:
        index = load_index(session)
    result = import_export(
        factory,
        index,
        path.read_bytes(),
        kind,
        crs=args.crs,
        actor="cli:import-hotline",
        progress=Progress(enabled=not args.no_progress),
    )
    if args.report:
        report = Path(args.report)
        report.write_bytes(report_file(result, "xlsx" if report.suffix.lower() == ".xlsx" else "csv"))
    print(json.dumps({k: v for k, v in result.items() if k != "report"}, ensure_ascii=False))
    return 0


def cmd_measures(args: argparse.Namespace) -> int:
    from pathlib import Path

    from gridmap.cases.measures import export, measures

    since = dt.datetime.fromisoformat(args.since) if args.since else None
    until = dt.datetime.fromisoformat(args.until) if args.until else None
    with storage.make_sessionmaker(_engine(args))() as session:
        period, table = measures(session, args.by, since=since, until=until, under=args.under)
    out = Path(args.output)
    out.write_bytes(export(table, "xlsx" if out.suffix.lower() == ".xlsx" else "csv", lang=args.lang))
    print(
        f"{len(table) - 1} {args.by} rows and the total for {period.since:%Y-%m-%d %H:%M} – "
        f"{period.until:%Y-%m-%d %H:%M} UTC written to {out}"
    )
    return 0


def cmd_relocate(args: argparse.Namespace) -> int:
    """`gridmap relocate --generation GEN`: where every located case would be under a generation (a report; the
    database is not changed). On Dask with --scheduler tcp://host:8786 (or local:N for N worker processes here)."""
    from pathlib import Path

    from gridmap.locating.batch import write_table
    from gridmap.planning import relocate

    url = storage.database_url_from(args.database or os.environ.get("GRIDMAP_DATABASE_URL"))
    out = Path(args.out) if args.out else None
    if out is not None and out.suffix.lower() != ".parquet":
        raise ValueError(f"--out: {out.name!r} must end in .parquet")
    if args.summary and Path(args.summary).suffix.lower() not in (".csv", ".xlsx", ".parquet"):
        raise ValueError(f"--summary: {Path(args.summary).name!r} must end in .csv, .xlsx or .parquet")
    with storage.make_sessionmaker(_engine(args))() as session:
        generation = _generation_id(session, args.generation)
    _, per_grid, totals = relocate.relocate(
        url, generation, scheduler=args.scheduler, rows_per_partition=args.rows_per_partition, out=out
    )
    if out is not None:
        totals["written"] = str(out)
    if args.summary:
        write_table(per_grid, args.summary)
        totals["summary"] = args.summary
    print(json.dumps(totals, ensure_ascii=False))
    return 0


def _generation_id(session: Session, text: str) -> int:
    """The id a GEN argument names: a number, or `active` for the active generation."""
    from gridmap.boundaries.areas import active_generation

    if text == "active":
        return active_generation(session).id
    if text.isascii() and text.isdigit() and len(text) <= 10:
        return int(text)
    raise ValueError(f"GEN: {text!r} is not a generation id; accepted: a number or 'active'")


def cmd_boundaries(args: argparse.Namespace) -> int:
    """`gridmap boundaries check GEN`: the validation report; exit 1 when it finds an error, 0 otherwise."""
    from gridmap.boundaries import check as bc
    from gridmap.boundaries.generations import get_generation

    band = args.household_band if args.household_band is not None else os.environ.get("GRIDMAP_CHECK_HOUSEHOLD_BAND")
    with storage.make_sessionmaker(_engine(args))() as session:
        gen = get_generation(session, _generation_id(session, args.generation))
        report = bc.check_generation(
            session,
            gen.id,
            noise_m2=args.noise_m2,
            sliver_m2=args.sliver_m2,
            gap_width_m=args.gap_width_m,
            grid_size_m=args.grid_size_m,
            household_band=band,
        )
        name, status = gen.name, gen.status
    summary = _check_summary(report, name, status)
    if args.json:
        print(summary, file=sys.stderr)
        print(json.dumps(report, ensure_ascii=False, indent=1))
    else:
        print(summary)
    return 0 if report["ok"] else 1


def cmd_boundaries_import(args: argparse.Namespace) -> int:
    """`gridmap boundaries import FILE`: a boundary file becomes a draft (or, with --activate, the active
    generation); prints the JSON summary. A refused file exits 2 with the reason on standard error."""
    from gridmap.planning import importer as bi

    limits = bi.Limits(**{field: int(os.environ[env]) for field, env in bi.LIMIT_ENV.items() if os.environ.get(env)})
    options = bi.Options(
        crs=args.crs,
        layer=args.layer,
        code_field=args.code_field,
        name_field=args.name_field,
        level=args.level,
        name=args.name,
        encoding=args.encoding,
        activate=_date("activate", args.activate) if args.activate else None,
    )
    band = os.environ.get("GRIDMAP_CHECK_HOUSEHOLD_BAND")
    with _acting(), storage.session_scope(storage.make_sessionmaker(_engine(args))) as session:
        summary = bi.import_boundaries(
            session, [(f, None) for f in args.file], options, limits, actor="cli", household_band=band
        )
    print(json.dumps(summary, ensure_ascii=False, indent=1))
    return 0


def cmd_boundaries_partition(args: argparse.Namespace) -> int:
    """`gridmap boundaries partition GEN --area CODE --n N`: a balanced partition of a community's grids, written as
    a new draft (or only printed with --dry-run); prints the proposal as JSON. A refusal exits 2 with the reason."""
    from gridmap.planning import partition

    with _acting(), storage.session_scope(storage.make_sessionmaker(_engine(args))) as session:
        gen_id = _generation_id(session, args.generation)
        grids = [c.strip() for c in args.grids.split(",")] if args.grids is not None else None
        proposal = partition.propose(session, gen_id, args.area, args.n, args.tolerance, args.seed, grids)
        out = proposal if args.dry_run else partition.open_as_draft(session, proposal, name=args.name, actor="cli")
    print(json.dumps(out, ensure_ascii=False, indent=1))
    return 0


def cmd_boundaries_activate(args: argparse.Namespace) -> int:
    """`gridmap boundaries activate GEN [--date D] [--force]`: the server operator's direct path — a draft,
    submitted or approved generation takes effect from D (default today, China time; never a later day) with
    everything that follows (branches and staff, merges, places, open cases re-located). Refused while it is not
    ready to publish (check errors, grids without a branch) unless --force. A running server swaps in the new
    boundaries within a minute. Prints what was done as JSON."""
    from gridmap.planning import publish

    band = os.environ.get("GRIDMAP_CHECK_HOUSEHOLD_BAND")
    day = _date("date", args.date) if args.date else publish.local_today()
    if not (args.generation.isascii() and args.generation.isdigit() and len(args.generation) <= 10):
        raise ValueError(f"GEN: {args.generation!r} is not a generation id (a number)")
    with _acting(), storage.session_scope(storage.make_sessionmaker(_engine(args))) as session:
        if not args.force:
            publish.require_ready(session, int(args.generation), household_band=band)
        done = publish.activate_generation(session, int(args.generation), day, actor="cli")
    print(json.dumps({k: v for k, v in done.items() if k != "generation"}, ensure_ascii=False, indent=1))
    return 0


def cmd_boundaries_publish_due(args: argparse.Namespace) -> int:
    """`gridmap boundaries publish-due`: what the server does every minute, once — approved generations whose day
    has come (00:00 China time) take effect. Prints the ids activated as JSON."""
    from gridmap.planning import publish

    with _acting(), storage.session_scope(storage.make_sessionmaker(_engine(args))) as session:
        done = publish.activate_due(session)
    print(json.dumps({"activated": done}))
    return 0


def cmd_boundaries_export(args: argparse.Namespace) -> int:
    """`gridmap boundaries export GEN OUT [--level L] [--format F]`: a generation's areas as GeoJSON, GeoPackage,
    Shapefile zip or KML (the format from --format or OUT's suffix); prints a JSON summary."""
    from gridmap.boundaries import export as boundary_export

    fmt = boundary_export.format_for_path(args.output, args.format)
    with storage.make_sessionmaker(_engine(args))() as session:
        gen_id = _generation_id(session, args.generation)
        summary = boundary_export.export(session, gen_id, args.output, level=args.level, fmt=fmt)
    print(json.dumps(summary, ensure_ascii=False))
    return 0


def _check_summary(report: Mapping[str, Any], name: str, status: str) -> str:
    from gridmap.boundaries.check import KIND_NAMES_ZH, KINDS, WARNINGS

    lines = [
        f"边界检查 boundary check: 第 {report['generation_id']} 版「{name}」({status})，{report['areas']} 个区域 areas",
        _cell("类型 kind", 28)
        + _cell("级别 severity", 16)
        + _cell("数量 count", 12, right=True)
        + _cell("面积 area m²", 18, right=True),
    ]
    for kind in KINDS:
        found = [p for p in report["problems"] if p["kind"] == kind]
        if not found:
            continue
        severity = "警告 warning" if kind in WARNINGS else "错误 error"
        area = sum(p["area_m2"] or 0.0 for p in found)
        area_text = f"{area:,.2f}" if any(p["area_m2"] is not None for p in found) else "—"
        label = f"{KIND_NAMES_ZH[kind]} {kind}"
        lines.append(
            _cell(label, 28)
            + _cell(severity, 16)
            + _cell(str(len(found)), 12, right=True)
            + _cell(area_text, 18, right=True)
        )
    errors = sum(p["severity"] == "error" for p in report["problems"])
    warnings = len(report["problems"]) - errors
    if not report["problems"]:
        lines.append("（无问题 no problems）")
    verdict = "通过 OK" if report["ok"] else "不通过 NOT OK"
    lines.append(f"结论 result: {verdict} — {errors} 个错误 errors, {warnings} 个警告 warnings")
    return "\n".join(lines)


def _cell(text: str, width: int, *, right: bool = False) -> str:
    """`text` padded to `width` terminal columns (CJK characters take two)."""
    import unicodedata

    pad = " " * max(0, width - len(text) - sum(unicodedata.east_asian_width(ch) in "WF" for ch in text))
    return pad + text if right else text + pad


def _command_in(argv: list[str]) -> str:
    """The sub-command named on a command line ("" for none, as in `gridmap --help`), so that `build_parser` needs
    to import only what that command's options are made of."""
    words = iter(argv)
    for word in words:
        if word == "--database":
            next(words, None)
        elif not word.startswith("-"):
            return word
    return ""


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The command line. With `command` (a sub-command's name, or "" for none), the options of other sub-commands
    that come from other modules (account roles and scopes, boundary check thresholds) are left out: those modules
    load the ORM, and `gridmap --help` or `gridmap locate-file` should not wait for it. Every sub-command is still
    listed. None: everything."""
    parser = argparse.ArgumentParser(prog="gridmap", description="Grid governance GIS (网格化管理)")
    parser.add_argument("--database", help="database URL (default: $GRIDMAP_DATABASE_URL or sqlite:///gridmap.sqlite)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("init", help="create or upgrade the schema").set_defaults(func=cmd_init)
    cpa = sub.add_parser("case-partitions", help="make the case table's month partitions ahead (PostgreSQL)")
    cpa.add_argument("--months-ahead", type=int, default=12, help="up to this many months after today (default 12)")
    cpa.add_argument("--since", metavar="YYYY-MM", help="from this month (default: this month)")
    cpa.set_defaults(func=cmd_case_partitions)
    demo = sub.add_parser("demo", help="load the demo district(s)")
    demo.add_argument("--district", default="530111", help="adcode(s), comma-separated, or 'all'")
    demo.add_argument("--small", action="store_true", help="a small version (for tests)")
    demo.add_argument("--seed", type=int, default=None)
    demo.add_argument("--today", help="reference date of the year of cases (YYYY-MM-DD)")
    demo.add_argument("--if-empty", action="store_true", help="do nothing when areas are already loaded")
    demo.add_argument("--no-progress", action="store_true", help="no progress lines on stderr")
    demo.add_argument(
        "--scale",
        choices=("district", "province"),
        default="district",
        help="district: the demo district(s) (default); province: 16 Yunnan districts, "
        "~200,000 micro-grids, ~10,000,000 cases (gridmap.demo.province)",
    )
    demo.add_argument("--districts", type=int, default=16, help="province: how many of the 16 districts")
    demo.add_argument("--microgrids", type=int, default=200_000, help="province: micro-grids over all districts")
    demo.add_argument("--cases", type=int, default=10_000_000, help="province: cases over all districts")
    demo.add_argument(
        "--append", action="store_true", help="province: load beside areas already in the database (default: refuse)"
    )
    demo.set_defaults(func=cmd_demo)
    serve = sub.add_parser("serve", help="serve the API and the map")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="server processes over the one database (each follows the others' changes before its next answer)",
    )
    serve.add_argument(
        "--access-log",
        action="store_true",
        help="log every request (off by default: it costs about a tenth of a millisecond per request)",
    )
    serve.set_defaults(func=cmd_serve)
    if command in (None, "user", "apikey"):
        from gridmap.access.policy import ROLES, SCOPES
    else:  # another command's parser: only its name and help are shown
        ROLES, SCOPES = (), {}

    user = sub.add_parser("user", help="accounts: add, list, passwd, disable, enable")
    users = user.add_subparsers(dest="user_command", required=True)
    add = users.add_parser("add", help="create an account (a random password is printed unless --password-stdin)")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=ROLES)
    add.add_argument("--area", action="append", help="an area code it acts for, with everything under it (repeatable)")
    add.add_argument("--department", help="a department account's department code")
    add.add_argument("--staff-id", type=int, help="a worker account's staff record")
    add.add_argument("--display-name")
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    users.add_parser("list", help="list the accounts")
    for name, text in (
        ("passwd", "set a new password (ends its sessions)"),
        ("disable", "stop an account"),
        ("enable", "let a stopped account sign in again"),
    ):
        cmd = users.add_parser(name, help=text)
        cmd.add_argument("name")
        if name == "passwd":
            cmd.add_argument("--password-stdin", action="store_true")
    user.set_defaults(func=cmd_user)
    key = sub.add_parser("apikey", help="API keys for integrations: add, list, revoke")
    keys = key.add_subparsers(dest="key_command", required=True)
    kadd = keys.add_parser("add", help="make a key (printed once)")
    kadd.add_argument("name")
    kadd.add_argument("--scope", action="append", required=True, choices=sorted(SCOPES))
    kadd.add_argument("--area", action="append", help="limit the key to these areas (repeatable)")
    keys.add_parser("list")
    krev = keys.add_parser("revoke")
    krev.add_argument("id", type=int)
    key.set_defaults(func=cmd_apikey)
    loc = sub.add_parser("locate", help="print the grid chain, branch and staff of a point")
    loc.add_argument("lon", type=float, nargs="?")
    loc.add_argument("lat", type=float, nargs="?")
    loc.add_argument("--crs", default="wgs84", help="wgs84, cgcs2000, gcj02, bd09 or EPSG:nnnn")
    loc.add_argument("--address", help="an address text (alone, or to cross-check the point)")
    loc.add_argument("--accuracy-m", type=float, help="GPS accuracy radius in metres")
    loc.add_argument("--as-of", help="the boundaries in force on this day (YYYY-MM-DD)")
    loc.set_defaults(func=cmd_locate)
    lf = sub.add_parser("locate-file", help="locate every row of a CSV, XLSX, GeoPackage or Parquet file")
    lf.add_argument("input", help="rows with lon/lat columns, a geometry, or an address column")
    lf.add_argument(
        "output", help="the same rows with chain codes, branch, method and flags (.csv .xlsx .gpkg .parquet)"
    )
    lf.add_argument("--crs", default="wgs84", help="coordinate system of lon/lat (wgs84, gcj02, bd09, EPSG:nnnn)")
    lf.add_argument("--as-of", help="the boundaries in force on this day (YYYY-MM-DD)")
    lf.add_argument("--near-m", type=float, default=0.0, help="flag points this close to another grid")
    lf.add_argument(
        "--chunk-rows",
        type=int,
        default=250_000,
        help="CSV and Parquet rows read, located and written at a time (memory grows with it, not with the file)",
    )
    lf.add_argument("--no-progress", action="store_true", help="no progress bar (shown on a terminal's stderr)")
    lf.set_defaults(func=cmd_locate_file)
    imp = sub.add_parser("import-hotline", help="import a 12345 hotline export (CSV or XLSX)")
    imp.add_argument("input", help="the export (.csv in UTF-8 or GB18030, or .xlsx)")
    imp.add_argument("--crs", default="gcj02", help="coordinate system of 经度/纬度 (default gcj02)")
    imp.add_argument("--report", help="write the row-by-row report here (.csv or .xlsx)")
    imp.add_argument("--no-progress", action="store_true", help="no progress lines on stderr")
    imp.set_defaults(func=cmd_import_hotline)
    bnd = sub.add_parser("boundaries", help="boundary generations: check")
    bnds = bnd.add_subparsers(dest="boundaries_command", required=True)
    chk = bnds.add_parser("check", help="the validation report of a generation (exit 1 when it has errors)")
    chk.add_argument("generation", metavar="GEN", help="generation id, or 'active'")
    chk.add_argument(
        "--json", action="store_true", help="print the whole report as JSON (the summary goes to standard error)"
    )
    if command in (None, "boundaries"):
        _check_options(chk)
    bnd.set_defaults(func=cmd_boundaries)
    bim = bnds.add_parser(
        "import",
        help="import a city's own boundaries (GeoJSON, GeoPackage, Shapefile .zip, KML, "
        "KMZ, CSV with WKT) as a draft; prints a JSON summary",
    )
    bim.add_argument(
        "file",
        metavar="FILE",
        nargs="+",
        help="the file of leaves (and, optionally, files of their parents, for the parents' names)",
    )
    bim.add_argument(
        "--crs",
        help="the numbers' coordinate system, overriding the file's: wgs84, cgcs2000, gcj02, "
        "bd09 or EPSG:nnnn (gcj02/bd09 for files drawn on AMap/Baidu that say EPSG:4326)",
    )
    bim.add_argument("--layer", help="the layer of a GeoPackage or of a zip with several Shapefiles")
    bim.add_argument("--code-field", help="the code column (default: 网格编码, 网格代码, 编码, code …)")
    bim.add_argument("--name-field", help="the name column (default: 网格名称, 名称, name …)")
    bim.add_argument(
        "--level",
        choices=("district", "subdistrict", "community", "grid", "microgrid"),
        help="the level of the file's features (default: from each code's length)",
    )
    bim.add_argument("--name", help="the draft's name")
    bim.add_argument(
        "--activate",
        metavar="YYYY-MM-DD",
        help="make the import the active generation from this day (the first one, on a fresh install)",
    )
    bim.add_argument("--encoding", help="text encoding of a Shapefile without .cpg, or of a CSV (e.g. GBK)")
    bim.set_defaults(func=cmd_boundaries_import)
    bpt = bnds.add_parser(
        "partition",
        help="suggest a balanced partition of a community's grids (GerryChain) and "
        "open it as a new draft; prints the proposal as JSON",
    )
    bpt.add_argument("generation", metavar="GEN", help="generation id, or 'active'")
    bpt.add_argument("--area", required=True, help="the community's code")
    bpt.add_argument("--n", type=int, required=True, help="how many grids (1-50)")
    bpt.add_argument("--grids", metavar="CODE,CODE", help="only these adjacent grids of the community (default: all)")
    bpt.add_argument(
        "--tolerance", type=float, default=0.10, help="households within this fraction of the mean (default 0.10)"
    )
    bpt.add_argument("--seed", type=int, default=0, help="the same seed gives the same proposal (default 0)")
    bpt.add_argument("--name", help="the new draft's name")
    bpt.add_argument("--dry-run", action="store_true", help="print the proposal without writing a draft")
    bpt.set_defaults(func=cmd_boundaries_partition)
    bex = bnds.add_parser(
        "export",
        help="write a generation's areas as GeoJSON, GeoPackage, Shapefile zip or KML "
        "(WGS84; code, name, level, parent, households, population, area_m2)",
    )
    bex.add_argument("generation", metavar="GEN", help="generation id, or 'active'")
    bex.add_argument("output", metavar="OUT", help="the file to write (.geojson .gpkg .zip .kml)")
    bex.add_argument(
        "--level",
        choices=("district", "subdistrict", "community", "grid", "microgrid", "all"),
        default="all",
        help="one level, or all (default: one layer per level)",
    )
    bex.add_argument(
        "--format", choices=("geojson", "gpkg", "shp", "kml"), help="the format (default: from OUT's suffix)"
    )
    bex.set_defaults(func=cmd_boundaries_export)
    bac = bnds.add_parser(
        "activate",
        help="put a generation in force now (the operator's direct path; the API publishes through submit and approve)",
    )
    bac.add_argument("generation", metavar="GEN", help="generation id (a draft, submitted or approved one)")
    bac.add_argument("--date", help="the day it takes effect, YYYY-MM-DD (default: today, China time; not later)")
    bac.add_argument(
        "--force", action="store_true", help="activate even with check errors or grids without a party branch"
    )
    bac.set_defaults(func=cmd_boundaries_activate)
    bpd = bnds.add_parser(
        "publish-due", help="activate the approved generations whose day has come (what the server does every minute)"
    )
    bpd.set_defaults(func=cmd_boundaries_publish_due)
    mea = sub.add_parser("measures", help="write the measures of every unit over a period (.csv or .xlsx)")
    mea.add_argument("output", help="file to write (.csv or .xlsx)")
    mea.add_argument("--by", default="grid", help="grid, community, subdistrict, branch, department or worker")
    mea.add_argument("--since", help="start (ISO 8601; default: the 1st of this month, China time)")
    mea.add_argument("--until", help="end, exclusive (ISO 8601; default: now)")
    mea.add_argument("--under", help="only areas inside this area code")
    mea.add_argument("--lang", default="zh", choices=("zh", "en"), help="headings in Chinese or English")
    mea.set_defaults(func=cmd_measures)
    rel = sub.add_parser(
        "relocate",
        help="where every located case (all years) would be under a generation: a "
        "Parquet report per case and a summary per grid; the database is not changed",
    )
    rel.add_argument("--generation", required=True, metavar="GEN", help="generation id (a draft too), or 'active'")
    rel.add_argument("--out", help="the report per case (.parquet): old and new codes and branch, method, changed")
    rel.add_argument("--summary", help="cases before and after, moved out and in, per grid (.csv .xlsx .parquet)")
    rel.add_argument(
        "--scheduler",
        help="run on Dask: a scheduler address (tcp://host:8786) or local:N for N worker "
        "processes on this machine (default: in this process)",
    )
    rel.add_argument("--rows-per-partition", type=int, default=250_000, help="cases per partition (by id range)")
    rel.set_defaults(func=cmd_relocate)
    if command and command not in sub.choices:
        return build_parser()  # not a sub-command's name (an abbreviated option's value?): everything
    return parser


def _check_options(chk: argparse.ArgumentParser) -> None:
    """The thresholds of `gridmap boundaries check`, with their defaults from `gridmap.boundaries.check`."""
    from gridmap.boundaries import check as bc

    chk.add_argument(
        "--sliver-m2",
        type=float,
        default=bc.SLIVER_M2,
        help=f"gaps, overlaps and parts under this are slivers (warnings; default {bc.SLIVER_M2:g})",
    )
    chk.add_argument(
        "--noise-m2", type=float, default=bc.NOISE_M2, help=f"… and under this, float noise (default {bc.NOISE_M2:g})"
    )
    chk.add_argument(
        "--gap-width-m",
        type=float,
        default=bc.GAP_WIDTH_M,
        help=f"holes and cracks narrower than this are never enclaves (default {bc.GAP_WIDTH_M:g})",
    )
    chk.add_argument(
        "--grid-size-m",
        type=float,
        default=bc.GRID_SIZE_M,
        help=f"the overlay's fixed-precision grid (default {bc.GRID_SIZE_M:g})",
    )
    chk.add_argument(
        "--household-band",
        help="households allowed per area by level (default: "
        f"$GRIDMAP_CHECK_HOUSEHOLD_BAND or {bc.DEFAULT_HOUSEHOLD_BAND})",
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(_command_in(argv)).parse_args(argv)
    try:
        code: int = args.func(args)
        return code
    except (GridmapError, ValueError) as exc:
        print(f"gridmap: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

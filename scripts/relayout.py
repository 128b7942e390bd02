#!/usr/bin/env python3
"""The package layout of issue 16 §6, as one mechanical step: run once, on a clean checkout, by the lead, after
everyone else has landed. It moves files with `git mv`, rewrites every reference by a module-name table, and stages
the result; it commits only with `--commit`. It refuses to run twice (or on a tree with changes).

    python3 scripts/relayout.py            # move, rewrite, stage; then review `git diff --cached --stat`
    python3 scripts/relayout.py --commit   # … and commit it as one commit
    python3 scripts/relayout.py --map gridmap.newmod=gridmap.cases.newmod   # a module added since this was written

Afterwards reinstall the editable package (`.venv/bin/pip install --no-deps -e .`, which `make install` does when
pyproject.toml changes): the installed packages are now `gridmap`, `gridmap_api` and `gridmap_web`.

## gridmap: from one flat folder of modules to packages by layer (bottom to top)

| was (gridmap/…)     | now (gridmap/…)            | why there                                                         |
|---------------------|----------------------------|-------------------------------------------------------------------|
| errors              | errors                     | the domain errors; everything may raise them                      |
| textcheck           | textcheck                  | checks of typed text, the same for every channel; imports errors  |
| workcal             | calendar                   | the working calendar and China time, read by boundaries, locating,|
|                     |                            | cases, planning, views and runtime alike, so below all of them    |
| crs                 | geo/crs                    | coordinate systems (pure: pyproj, numpy)                          |
| cellindex           | geo/cells                  | the precomputed cell grid: "which leaf covers a point"            |
| lookup              | geo/index                  | the point → area-chain index of one generation (on geo/cells)     |
| topology            | geo/coverage               | exact tilings: noding polygons into a clean coverage, splitting   |
| tabular             | io/tabular                 | CSV/XLSX written safely, read with bounded memory                 |
| _gpkgio             | io/gpkg                    | GeoPackage/GeoJSON through GDAL in a process of its own           |
| tables              | store/tables               | the schema                                                        |
| storage             | store/engine               | engines, sessions, migrate                                        |
| _spatial            | store/dialect              | the few SQL differences of SpatiaLite and PostGIS                 |
| audit               | store/audit                | the append-only log, hooked into every session by store/engine    |
| media_store         | store/media                | where attachment bytes live (folder or S3)                        |
| case_partitions     | store/partitions           | the monthly partitions of the case table on PostgreSQL            |
| migrations/         | store/migrations/          | Alembic; found beside store/engine.py as before                   |
| accounts            | access/accounts            | accounts, sign-in, tokens, API keys                               |
| policy              | access/policy              | who may do what, where                                            |
| areas               | boundaries/areas           | the area hierarchy: queries, one area with branch and staff       |
| generations         | boundaries/generations     | boundaries in force on a day, the index registry                  |
| codes               | boundaries/codes           | area codes (DB11 shape)                                           |
| divisions           | boundaries/divisions       | China's administrative divisions (GB/T 2260)                      |
| boundary_check      | boundaries/check           | does every level tile its parent (read by planning and the CLI)   |
| boundary_export     | boundaries/export          | boundaries out to GIS tools                                       |
| locate              | locating/locate            | a point or an address → the responsible grid                      |
| gazetteer           | locating/gazetteer         | address text → place                                              |
| batch               | locating/batch             | locating many records: frames and files                           |
| search              | locating/search            | the map's one search box                                          |
| address_match       | locating/address_match     | matches for a dispatcher to confirm                               |
| cases               | cases/intake               | intake (located, filed, routed), listing and reading of cases     |
| workflow            | cases/workflow             | the case loop as guarded transitions                              |
| catalogue           | cases/catalogue            | the catalogue as an administrator edits it                        |
| duplicates          | cases/duplicates           | duplicate suggestions                                             |
| measures            | cases/measures             | how the work is measured                                          |
| rankings            | cases/rankings             | areas and workers ordered on one measure                          |
| patrol              | cases/patrol               | a worker's patrol reports                                         |
| notifications       | cases/notifications        | urged/supervised cases reach their holder                         |
| attachments         | cases/attachments          | photos of a case                                                  |
| bulk                | cases/bulk                 | many cases in one transaction                                     |
| case_stats          | cases/stats                | counts per area                                                   |
| case_export         | cases/export               | a list of cases as a spreadsheet                                  |
| hotline             | cases/hotline              | 12345 hotline exports in: an intake channel (it files cases)      |
| open311             | cases/open311              | Open311 GeoReport v2: an intake channel                           |
| boundary_import     | planning/importer          | a city's own boundary file becomes a draft generation             |
| _import_reader      | planning/_import_reader    | its reader process                                                |
| plan_edit           | planning/edit              | split, merge, move, reassign, lock in a draft                     |
| plan_balance        | planning/balance           | the balance table and a draft's diff                              |
| partition           | planning/partition         | a suggested balanced partition (GerryChain)                       |
| boundary_repair     | planning/repair            | repairs the check offers, applied to a draft                      |
| publish             | planning/publish           | submit, approve, take into force                                  |
| relocate            | planning/relocate          | every case re-attributed under a generation                       |
| mapdata             | views/mapdata              | what the map needs, shaped for the browser (not `map`: a builtin) |
| features            | views/geojson              | GeoJSON of areas and cases                                        |
| tiles               | views/tiles                | Mapbox Vector Tiles                                               |
| ogc                 | views/ogc                  | OGC API – Features documents                                      |
| runtime             | runtime                    | the caches of a serving process (on top: it reads most layers)    |
| cli                 | cli                        | the `gridmap` command (on top)                                    |
| demo/               | demo/                      | the demo data (on top)                                            |

Departures from the issue's example, and why: `hotline` and `open311` go to `cases/`, not `io/`: they file cases
(they import cases/intake and cases/bulk), while `io/` holds only the file formats that boundaries, locating and
cases all read (`io` below them keeps every arrow pointing down). `boundary_import` goes to `planning/` (it makes a
draft and locates through locating/batch; in `boundaries/` it would point up). The working calendar is a top-level
module, not `cases/calendar`: eight packages below `cases` read it. `cases.py` is moved whole to `cases/intake`;
splitting its listing and reading into `cases/queries` moves functions, not files, and is left for a reviewed
change. `mapdata` keeps its name (a module called `map` shadows the builtin wherever it is imported by name).

A module that is imported under a new last name keeps its old local name (`from gridmap.store import engine as
storage`, `from gridmap.cases import calendar as workcal`), so that no body of code changes and no local variable
(`engine` is one in fifty functions) is shadowed; the import line shows both names.

## api and web: installed under the project's name

The top-level folders stay `gridmap/`, `api/` and `web/`. The two adapters gain one folder level each:
`api/gridmap_api/…` and `web/gridmap_web/…` (the layout setuptools calls "src", one per component), installed as
`gridmap_api` and `gridmap_web` next to `gridmap`, so that the distribution no longer installs generic top-level
`api` and `web` packages. Chosen over a `package-dir` rename (`gridmap_api` → `api/`): with a rename the source
could be imported only through setuptools' editable import hook, which mypy does not follow, and `import api`
would still work from the checkout beside `import gridmap_api` (one file, two modules). Chosen over `gridmap.api`:
`gridmap` must not contain FastAPI code. pytest finds them through `pythonpath`, mypy through `mypy_path`, the
editable install through plain paths.

## What is rewritten

Every tracked text file except vendored and data files: Python imports (`from gridmap import x` by its syntax tree,
split per package), dotted names anywhere in Python, Markdown, TOML, Makefile and shell (`gridmap.x.y`,
`mock.patch("gridmap.x.y")`, `python -m gridmap.x`, `api.main:app`, logger names — they follow the modules),
and file paths everywhere (`gridmap/x.py`, `api/routes/…`, `web/static/…`; in JavaScript and CSS only paths:
their dotted strings are storage keys). pyproject.toml's package lists, package data, ruff, mypy and pytest settings
are edited explicitly. The README's Architecture section is replaced by the map below (README_MAP). No shim
modules: the only data that names modules are the index caches in ~/.cache/gridmap (pickles), which are rebuilt
when they no longer load (generations catches ImportError), and Alembic's table holds revision ids, not paths.
"""

from __future__ import annotations

import argparse
import ast
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# old module (under gridmap/) → new dotted path under gridmap; a `/` suffix marks a folder
MOVES: dict[str, str] = {
    "workcal": "calendar",
    "crs": "geo.crs",
    "cellindex": "geo.cells",
    "lookup": "geo.index",
    "topology": "geo.coverage",
    "tabular": "io.tabular",
    "_gpkgio": "io.gpkg",
    "tables": "store.tables",
    "storage": "store.engine",
    "_spatial": "store.dialect",
    "audit": "store.audit",
    "media_store": "store.media",
    "case_partitions": "store.partitions",
    "migrations": "store.migrations",
    "accounts": "access.accounts",
    "policy": "access.policy",
    "areas": "boundaries.areas",
    "generations": "boundaries.generations",
    "codes": "boundaries.codes",
    "divisions": "boundaries.divisions",
    "boundary_check": "boundaries.check",
    "boundary_export": "boundaries.export",
    "locate": "locating.locate",
    "gazetteer": "locating.gazetteer",
    "batch": "locating.batch",
    "search": "locating.search",
    "address_match": "locating.address_match",
    "cases": "cases.intake",
    "workflow": "cases.workflow",
    "catalogue": "cases.catalogue",
    "duplicates": "cases.duplicates",
    "measures": "cases.measures",
    "rankings": "cases.rankings",
    "patrol": "cases.patrol",
    "notifications": "cases.notifications",
    "attachments": "cases.attachments",
    "bulk": "cases.bulk",
    "case_stats": "cases.stats",
    "case_export": "cases.export",
    "hotline": "cases.hotline",
    "open311": "cases.open311",
    "boundary_import": "planning.importer",
    "_import_reader": "planning._import_reader",
    "plan_edit": "planning.edit",
    "plan_balance": "planning.balance",
    "partition": "planning.partition",
    "boundary_repair": "planning.repair",
    "publish": "planning.publish",
    "relocate": "planning.relocate",
    "mapdata": "views.mapdata",
    "features": "views.geojson",
    "tiles": "views.tiles",
    "ogc": "views.ogc",
}
STAY = {"__init__", "errors", "textcheck", "runtime", "cli", "demo"}

PACKAGES: dict[str, str] = {
    "geo": "Geometry with no database: coordinate systems, the point → area index, exact coverages.",
    "io": "File formats that every layer reads and writes: spreadsheets (CSV, XLSX) and GDAL's vector files.",
    "store": "The schema and the two databases (SpatiaLite, PostGIS): engines, sessions, migrations, the case "
    "table's monthly partitions, the audit log, media storage.",
    "access": "Who acts: accounts, sign-in, tokens, API keys, and the policy of who may do what, where.",
    "boundaries": "The area hierarchy and its generations: queries, codes, divisions, the tiling check, export.",
    "locating": "A point or an address text → the responsible grid, one at a time or in files of millions.",
    "cases": "The case loop: intake by every channel, workflow, catalogue, measures, photos, notifications.",
    "planning": "Drafts of boundaries: import, edit, balance, partition, repair, publish, and what a redraw moves.",
    "views": "Shapes for the browser and GIS clients: map data, GeoJSON, vector tiles, OGC API – Features.",
}
ADAPTERS = {"api": "gridmap_api", "web": "gridmap_web"}

TEXT_SUFFIXES = {".py", ".md", ".toml", ".cfg", ".ini", ".txt", ".sh", ".yml", ".yaml", ".mako", ".rst", ".example"}
PATH_ONLY_SUFFIXES = {".js", ".css", ".html"}
SKIP_PARTS = ("geodata/", "/vendor/", "requirements", "scripts/relayout.py")  # this script: its tables stay as written

README_MAP = """## Architecture

```
web/gridmap_web/  pages (folium) + static scripts ──┐        api/gridmap_api/  FastAPI: main · deps · errors ·
                                                   │  ◄──── settings · schemas/ · routes/ (parse, one call, answer)
                                                   ▼          │
gridmap/  the library — no FastAPI, Starlette or folium; no environment variables
  cli · runtime · demo/        the `gridmap` command, a serving process's caches, the demo data
  views/      mapdata · geojson · tiles · ogc                           shapes for the browser and GIS clients
  planning/   importer · edit · balance · partition · repair · publish · relocate      drafts of boundaries
  cases/      intake · workflow · catalogue · duplicates · measures · rankings · patrol · notifications ·
              attachments · bulk · stats · export · hotline · open311                the case loop, every channel
  locating/   locate · gazetteer · batch · search · address_match      point or address → grid
  boundaries/ areas · generations · codes · divisions · check · export the area hierarchy, its generations
  access/     accounts · policy                                         who acts, who may do what where
  calendar    the working calendar, China time
  store/      tables · engine · dialect · partitions · audit · media · migrations/   the two databases
  io/         tabular · gpkg                                            CSV/XLSX, GDAL vector files
  geo/        crs · cells · index · coverage                            geometry, no database
  errors · textcheck                                                    used by all
```

Imports point down the list and never up: `api` → `web` (one pages router) → `gridmap`; nothing imports `api` but
the ASGI entry point and the tests; `web` does not import `api`. Inside `gridmap` a package imports only the ones
below it. Four imports still point up, all in `boundaries/generations`: three inside functions (the index cache
folder from `locating/batch`, redraws handed to `planning/edit`, activation to `planning/publish`) and one at
module level, of `runtime` (it installs the hooks that tell other processes of a change); they are the next seams
to cut. Installed packages: `gridmap`, `gridmap_api` (from `api/`), `gridmap_web` (from `web/`).

"""

CHANGELOG_ENTRY = (
    "\n".join(
        textwrap.wrap(
            "- The package layout shows the architecture (issue 16 §6): `gridmap/` has packages by layer "
            "(`geo`, `io`, `store`, `access`, `boundaries`, `locating`, `cases`, `planning`, `views`), and `api` "
            "and `web` are installed as `gridmap_api` and `gridmap_web`; the README's Architecture section maps "
            "them. Code that imported `gridmap.<module>` imports the new path (table in `scripts/relayout.py`); "
            "reinstall (`pip install -e .`).",
            width=116,
            subsequent_indent="  ",
        )
    )
    + "\n"
)


def git(*args: str, capture: bool = True) -> str:
    done = subprocess.run(["git", *args], cwd=ROOT, capture_output=capture, text=True)
    if done.returncode != 0:
        sys.exit(f"git {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout if capture else ""


def refuse(message: str) -> None:
    sys.exit(f"relayout: {message}")


# -- the tables ----------------------------------------------------------------------------------------------------


class Tables:
    """The module tables of this checkout: gridmap's moves and the adapters' module names (from the tree)."""

    def __init__(self, extra: dict[str, str]) -> None:
        self.moves = {**MOVES, **extra}
        self.folders = {m for m in self.moves if (ROOT / "gridmap" / m).is_dir()}  # before the move: migrations
        self.api_names = self._top_names("api")
        self.web_names = self._top_names("web")

    @staticmethod
    def _top_names(folder: str) -> list[str]:
        names = {Path(p).relative_to(folder).parts[0] for p in git("ls-files", folder).split()}
        return sorted(names, key=len, reverse=True)

    def gridmap_new(self, old: str) -> str:
        return f"gridmap.{self.moves[old]}"


def check_preconditions(tables: Tables) -> None:
    if (ROOT / "gridmap" / "store").exists() or (ROOT / "api" / "gridmap_api").exists():
        refuse("already applied (gridmap/store or api/gridmap_api exists); it runs once")
    if git("status", "--porcelain", "--untracked-files=no").strip():
        refuse("the working tree has changes; run on a clean checkout")
    flat = sorted(Path(p).stem for p in git("ls-files", "gridmap/*.py").split() if Path(p).parent.name == "gridmap")
    folders = sorted({Path(p).parts[1] for p in git("ls-files", "gridmap").split() if len(Path(p).parts) > 2})
    unknown = [m for m in flat + folders if m not in tables.moves and m not in STAY]
    if unknown:
        refuse(
            "modules this table does not place: "
            + ", ".join(unknown)
            + "\n  add each with --map gridmap.NAME=gridmap.PACKAGE.NAME (or extend MOVES) and run again"
        )
    missing = [m for m in tables.moves if m not in flat and m not in folders]
    if missing:
        print("relayout: not in this checkout (skipped): " + ", ".join(missing))
        for m in missing:
            del tables.moves[m]


# -- moving --------------------------------------------------------------------------------------------------------


def move_files(tables: Tables) -> set[Path]:
    """git mv every file; returns the moved .py files (at their new places) that went one folder deeper."""
    moved: set[Path] = set()
    for package, doc in PACKAGES.items():
        folder = ROOT / "gridmap" / package
        folder.mkdir()
        (folder / "__init__.py").write_text(f'"""{doc}"""\n', encoding="utf-8")
        git("add", str(folder / "__init__.py"))
    for old, new in tables.moves.items():
        parts = new.split(".")
        source = ROOT / "gridmap" / f"{old}.py"
        source = source if source.is_file() else ROOT / "gridmap" / old  # a folder (migrations)
        target = ROOT / "gridmap" / Path(*parts[:-1]) / (parts[-1] + ("" if source.is_dir() else ".py"))
        target.parent.mkdir(parents=True, exist_ok=True)
        if not (target.parent / "__init__.py").exists():
            refuse(f"{target.parent} is not a package of PACKAGES")
        git("mv", str(source.relative_to(ROOT)), str(target.relative_to(ROOT)))
        moved |= {target} if target.suffix == ".py" else set(target.rglob("*.py"))
    for folder, package in ADAPTERS.items():
        (ROOT / folder / package).mkdir()
        for name in tables.api_names if folder == "api" else tables.web_names:
            git("mv", f"{folder}/{name}", f"{folder}/{package}/{name}")
        moved |= set((ROOT / folder / package).rglob("*.py"))
    return moved


# -- rewriting -----------------------------------------------------------------------------------------------------


class Rewriter:
    def __init__(self, tables: Tables) -> None:
        self.t = tables
        mods = sorted(tables.moves, key=len, reverse=True)
        alt = "|".join(map(re.escape, mods))
        # dotted: gridmap.cases, gridmap.cases.create_case, "gridmap.migrations"; not gridmap.demo.cases
        self.dotted_re = re.compile(rf"(?<![\w.])gridmap\.({alt})(?![\w])")
        self.path = re.compile(rf"(?<![\w.\-/])gridmap/({alt})(\.py\b|/|(?=[\s`'\")\]:,]))")
        api = "|".join(map(re.escape, (n.removesuffix(".py") for n in tables.api_names)))
        web = "|".join(map(re.escape, (n.removesuffix(".py") for n in tables.web_names)))
        self.adapter_dotted = re.compile(rf"(?<![\w.\-/])(api|web)\.(?=({api}|{web})(?![\w-]))")
        self.adapter_path = re.compile(rf"(?<![\w.\-/])(api|web)/(?=({api}|{web})(?![\w-]))")
        self.adapter_join = re.compile(r"""(["'])(api|web)\1(\s*/\s*)(?=(["'])([\w.]+)\4)""")
        self.adapter_import = re.compile(r"^(\s*(?:from|import)\s+)(api|web)(?=\s|\.|$|,)", re.M)

    def _adapter_join(self, m: re.Match[str]) -> str:
        folder, name = m.group(2), m.group(5)
        names = self.t.api_names if folder == "api" else self.t.web_names
        if not any(n.removesuffix(".py") == name.removesuffix(".py") for n in names):
            return m.group(0)
        return f"{m.group(0)}{m.group(1)}{ADAPTERS[folder]}{m.group(1)}{m.group(3)}"

    # a path: gridmap/cases.py → gridmap/cases/intake.py; gridmap/migrations/ → gridmap/store/migrations/
    def _path(self, m: re.Match[str]) -> str:
        old, tail = m.group(1), m.group(2)
        new = self.t.moves[old].replace(".", "/")
        if tail != ".py" and old not in self.t.folders:
            return m.group(0)  # "gridmap/cases/1/abc.png" is a storage key, "gridmap/cases" prose: not the module
        return f"gridmap/{new}{tail}"

    def _adapter_path(self, m: re.Match[str]) -> str:
        folder = m.group(1)
        name = m.group(2)
        names = self.t.api_names if folder == "api" else self.t.web_names
        if not any(n.removesuffix(".py") == name for n in names):
            return m.group(0)
        return f"{folder}/{ADAPTERS[folder]}/"

    def _adapter_dotted(self, m: re.Match[str]) -> str:
        folder, name = m.group(1), m.group(2)
        names = self.t.api_names if folder == "api" else self.t.web_names
        if not any(n.removesuffix(".py") == name for n in names) or name == "static":
            return m.group(0)
        return f"{ADAPTERS[folder]}."

    def paths(self, text: str) -> str:
        text = self.path.sub(self._path, text)
        return self.adapter_path.sub(self._adapter_path, text)

    def dotted(self, text: str) -> str:
        text = self.dotted_re_sub(text)
        return self.adapter_dotted.sub(self._adapter_dotted, text)

    def dotted_re_sub(self, text: str) -> str:
        return self.dotted_re.sub(lambda m: self.t.gridmap_new(m.group(1)), text)

    FROM_GRIDMAP = re.compile(
        r"^([ \t]*)from gridmap import (\w+(?: as \w+)?(?:, \w+(?: as \w+)?)*)[ \t]*$|"
        r"from gridmap import (\w+(?: as \w+)?(?:, \w+(?: as \w+)?)*)",
        re.M,
    )

    def from_gridmap_text(self, text: str) -> str:
        """`from gridmap import x` written in a string or a document (code run by `python -c`, an example): a line
        of its own becomes one line per package, inside a line the statements are joined by `; `."""

        def one(m: re.Match[str]) -> str:
            whole_line = m.group(2) is not None
            names = [(n.split(" as ")[0], n.split(" as ")[-1]) for n in (m.group(2) or m.group(3)).split(", ")]
            if not any(n in self.t.moves for n, _ in names):
                return m.group(0)
            groups = self.group_imports(names)
            if whole_line:
                return "\n".join(f"{m.group(1)}from {p} import {', '.join(items)}" for p, items in groups.items())
            return "; ".join(f"from {p} import {', '.join(items)}" for p, items in groups.items())

        return self.FROM_GRIDMAP.sub(one, text)

    def group_imports(self, names: list[tuple[str, str]]) -> dict[str, list[str]]:
        """(module, local name) pairs of `from gridmap import …` → {new package: ["leaf as local", …]}."""
        groups: dict[str, list[str]] = {}
        for name, local in names:
            if name in self.t.moves:
                package, _, leaf = self.gridmap_new_split(name)
                item = leaf if leaf == local else f"{leaf} as {local}"
            else:
                package, item = "gridmap", name if name == local else f"{name} as {local}"
            groups.setdefault(package, []).append(item)
        return groups

    def text(self, text: str) -> str:
        return self.from_gridmap_text(self.paths(self.dotted(text)))

    def python(self, text: str, name: str) -> str:
        # dotted names first: the import lines made below name packages (`from gridmap.cases import intake`) that
        # would read as old modules (`gridmap.cases`) to the dotted pass
        text = self.paths(self.dotted(text))
        # ROOT / "web" / "static" → ROOT / "web" / "gridmap_web" / "static"
        text = self.adapter_join.sub(self._adapter_join, text)
        # `import api` binds `api`: keep the name (its uses are bare names); `import api.main` binds the package
        text = re.sub(
            r"^(\s*import )(api|web)(\s*(?:#.*)?)$",
            lambda m: f"{m.group(1)}{ADAPTERS[m.group(2)]} as {m.group(2)}{m.group(3)}",
            text,
            flags=re.M,
        )
        text = self.adapter_import.sub(lambda m: m.group(1) + ADAPTERS[m.group(2)], text)
        return self.wrap_imports(self.from_gridmap_text(self._from_gridmap_imports(text, name)))

    @staticmethod
    def wrap_imports(text: str, width: int = 120) -> str:
        """`from a.b import X, Y, …` lines the longer names took past `width`, wrapped as the code base wraps them
        (parentheses, continuation under the first name); ruff format, where it ran before, has the last word."""
        out = []
        for line in text.split("\n"):
            m = re.fullmatch(r"(\s*from [\w.]+ import )([\w, ]+)", line)
            if len(line) <= width or not m:
                out.append(line)
                continue
            head, names = m.group(1) + "(", m.group(2).split(", ")
            rows, row = [], ""
            for n in names:
                candidate = f"{row}, {n}" if row else n
                if len(head) + len(candidate) + 2 > width and row:
                    rows.append(row + ",")
                    row = n
                else:
                    row = candidate
            rows.append(row + ")")
            out.append(head + f"\n{' ' * len(head)}".join(rows))
        return "\n".join(out)

    @staticmethod
    def deeper(text: str) -> str:
        """A module moved one folder down finds files beside the repository one parent further up."""
        return re.sub(
            r"(Path\(__file__\)(?:\.resolve\(\))?\.parents\[)(\d+)\]",
            lambda m: f"{m.group(1)}{int(m.group(2)) + 1}]",
            text,
        )

    def _from_gridmap_imports(self, text: str, name: str) -> str:
        """`from gridmap import a, b as c` → one line per package, each module under its old local name."""
        try:
            tree = ast.parse(text)
        except SyntaxError as exc:
            print(f"relayout: {name} does not parse ({exc}); only its dotted names are rewritten")
            return text
        lines = text.splitlines(keepends=True)
        edits = []
        for node in ast.walk(tree):
            if not (isinstance(node, ast.ImportFrom) and node.level == 0 and node.module == "gridmap"):
                continue
            if not any(a.name in self.t.moves for a in node.names):
                continue
            groups = self.group_imports([(a.name, a.asname or a.name) for a in node.names])
            indent = " " * node.col_offset
            new = f"\n{indent}".join(f"from {p} import {', '.join(items)}" for p, items in groups.items())
            edits.append((node.lineno, node.col_offset, node.end_lineno, node.end_col_offset, new))
        for start, col, end, end_col, new in sorted(edits, reverse=True):
            first, last = lines[start - 1], lines[end - 1]
            lines[start - 1 : end] = [first[:col] + new + last[end_col:]]
        return "".join(lines)

    def gridmap_new_split(self, old: str) -> tuple[str, str, str]:
        return self.t.gridmap_new(old).rpartition(".")


def tracked_files() -> list[Path]:
    return [ROOT / p for p in git("ls-files").split("\n") if p and not any(s in p for s in SKIP_PARTS)]


def rewrite_all(tables: Tables, moved: set[Path]) -> list[Path]:
    rw = Rewriter(tables)
    changed = []
    for path in tracked_files():
        if not path.is_file():
            continue
        rel = path.relative_to(ROOT).as_posix()
        suffix = path.suffix
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        if suffix == ".py":
            new = rw.python(text, rel)
            if path in moved:
                new = rw.deeper(new)
                if re.search(r"Path\(__file__\)(?!(\.resolve\(\))?\.(parents\[|with_name\())", new):
                    print(f"relayout: WARNING {rel} uses __file__ and moved one folder down: check it")
        elif suffix in TEXT_SUFFIXES or path.name in ("Makefile", "run", ".gitignore") or not suffix:
            new = rw.text(text)
        elif suffix in PATH_ONLY_SUFFIXES:
            new = rw.paths(text)
        else:
            continue
        if new != text:
            path.write_text(new, encoding="utf-8")
            changed.append(path)
    return changed


# -- the few files edited by hand ----------------------------------------------------------------------------------


def replace_once(path: Path, old: str, new: str, what: str) -> None:
    text = path.read_text(encoding="utf-8")
    if old not in text:
        print(f"relayout: WARNING {path.name}: {what} not found as expected; edit it by hand:\n  {old!r}")
        return
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def edit_pyproject() -> None:
    path = ROOT / "pyproject.toml"
    text = path.read_text(encoding="utf-8")
    text = re.sub(
        r'include = \["gridmap\*", "api\*", "web\*"\]',
        'where = [".", "api", "web"]  # api/gridmap_api, web/gridmap_web: see scripts/relayout.py\n'
        'include = ["gridmap", "gridmap.*", "gridmap_api", "gridmap_api.*", "gridmap_web", "gridmap_web.*"]',
        text,
    )
    text = re.sub(r'^gridmap = \["migrations/', '"gridmap.store" = ["migrations/', text, flags=re.M)
    text = re.sub(r'^web = \["static/', 'gridmap_web = ["static/', text, flags=re.M)
    text = text.replace(
        'known-first-party = ["gridmap", "api", "web", "tests"]',
        'known-first-party = ["gridmap", "gridmap_api", "gridmap_web", "tests"]',
    )
    text = re.sub(
        r'^files = \["gridmap", "api", "web"\]',
        'files = ["gridmap", "api/gridmap_api", "web/gridmap_web"]\nmypy_path = ["api", "web"]',
        text,
        flags=re.M,
    )
    text = text.replace(
        'module = ["api", "api.*", "web", "web.*"]',
        'module = ["gridmap_api", "gridmap_api.*", "gridmap_web", "gridmap_web.*"]',
    )
    text = text.replace(
        'testpaths = ["tests"]\n',
        'testpaths = ["tests"]\npythonpath = ["api", "web"]  # gridmap_api, '
        "gridmap_web from the checkout, installed or not\n",
        1,
    )
    path.write_text(text, encoding="utf-8")
    for needle in ('"gridmap_api.*"', '"gridmap.store" = ', "gridmap_web = [", "mypy_path", "pythonpath"):
        if needle not in text:
            print(f"relayout: WARNING pyproject.toml: no {needle!r} after the edit; check it by hand")


def edit_readme() -> None:
    path = ROOT / "README.md"
    text = path.read_text(encoding="utf-8")
    m = re.search(r"^## Architecture\n.*?(?=^## )", text, flags=re.M | re.S)
    if m:
        text = text[: m.start()] + README_MAP + text[m.end() :]
    else:
        m = re.search(r"^## Development\n", text, flags=re.M)
        at = m.start() if m else len(text)
        text = text[:at] + README_MAP + text[at:]
    path.write_text(text, encoding="utf-8")


def edit_changelog() -> None:
    path = ROOT / "CHANGELOG.md"
    if not path.exists():
        return
    text = path.read_text(encoding="utf-8")
    m = re.search(r"^## Unreleased\n(?:.*\n)*?### Changed\n", text, flags=re.M)
    if m:
        text = text[: m.end()] + CHANGELOG_ENTRY + text[m.end() :]
    else:
        print("relayout: WARNING CHANGELOG.md: no 'Unreleased / Changed' heading; entry not added")
    path.write_text(text, encoding="utf-8")


# -- the linters' verdicts kept --------------------------------------------------------------------------------------


def find_ruff() -> str | None:
    for candidate in (os.environ.get("RUFF"), str(ROOT / ".venv" / "bin" / "ruff"), shutil.which("ruff")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def ruff_clean(ruff: str | None, files: list[str], *args: str) -> set[str]:
    """The files among `files` that ruff (`args`: a check or `format --check`) finds nothing in."""
    if ruff is None or not files:
        return set()
    done = subprocess.run([ruff, *args, "--quiet", *files], cwd=ROOT, capture_output=True, text=True)
    if done.returncode == 0:
        return set(files)
    return {f for f in files if f not in done.stdout + done.stderr}


def before_linting(ruff: str | None) -> tuple[set[str], set[str]]:
    """Which Python files import-sort clean and format clean before the move (by their old paths)."""
    files = [p for p in git("ls-files", "*.py").split() if not any(s in p for s in SKIP_PARTS)]
    sort_clean = ruff_clean(ruff, files, "check", "--select", "I", "--output-format", "concise")
    format_clean = ruff_clean(ruff, files, "format", "--check")
    return sort_clean, format_clean


def after_linting(ruff: str | None, clean: tuple[set[str], set[str]], renames: dict[str, str]) -> None:
    """The rewritten imports sorted and wrapped as ruff wants, in the files that were clean before (only they:
    a file someone left unformatted is not reformatted by a mechanical step)."""
    if ruff is None:
        print("relayout: WARNING no ruff (.venv/bin/ruff, $RUFF or PATH): imports left in their old order")
        return
    sort_clean, format_clean = ({renames.get(f, f) for f in c} for c in clean)
    if sort_clean:
        subprocess.run(
            [ruff, "check", "--select", "I", "--fix", "--quiet", *sorted(sort_clean)],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
    if format_clean:
        subprocess.run([ruff, "format", "--quiet", *sorted(format_clean)], cwd=ROOT, capture_output=True, text=True)


def renamed_paths() -> dict[str, str]:
    out = git("diff", "--cached", "--name-status", "-M", "--diff-filter=R")
    return {parts[1]: parts[2] for parts in (line.split("\t") for line in out.splitlines()) if len(parts) == 3}


# -- checks --------------------------------------------------------------------------------------------------------


def leftovers(tables: Tables) -> list[str]:
    """Old module names and paths still written anywhere (git grep), apart from this script: dotted names outside
    JavaScript and CSS (whose dotted strings are storage keys), paths everywhere, imports of `api` and `web`."""
    gone = "|".join(m for m in tables.moves if m != "cases")  # gridmap.cases is a package now

    def grep(pattern: str, *where: str) -> list[str]:
        done = subprocess.run(
            ["git", "grep", "-nE", pattern, "--", *where, ":!scripts/relayout.py", ":!geodata"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        return done.stdout.splitlines()

    return (
        grep(rf"(^|[^A-Za-z0-9_./])gridmap\.({gone})([^A-Za-z0-9_]|$)", ".", ":!*.js", ":!*.css")
        + grep(rf"(^|[^A-Za-z0-9_./-])gridmap/({gone}|cases)\.py", ".")
        + grep(rf"from gridmap import (.*, )?({gone}|cases)(,| |$)", ".")
        + grep(r"^\s*(from|import)\s+(api|web)(\s|\.|$)", "*.py")
    )


LAYERS = [
    "errors",
    "textcheck",
    "geo",
    "io",
    "store",
    "calendar",
    "access",
    "boundaries",
    "locating",
    "cases",
    "planning",
    "views",
    "runtime",
    "cli",
    "demo",
]  # README_MAP, bottom to top (the last three: one row)


def upward_imports() -> list[str]:
    """Imports inside gridmap that point up the README's map (a package importing one listed above it)."""
    rank = {name: i for i, name in enumerate(LAYERS)}
    rank.update(cli=rank["runtime"], demo=rank["runtime"])
    found = []
    for path in sorted((ROOT / "gridmap").rglob("*.py")):
        source = path.relative_to(ROOT / "gridmap").parts[0].removesuffix(".py")
        if source not in rank or "migrations" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("gridmap"):
                names = [f"{node.module}.{a.name}" for a in node.names] if node.module == "gridmap" else [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                parts = (name or "").split(".")
                if len(parts) > 1 and parts[0] == "gridmap" and rank.get(parts[1], -1) > rank[source]:
                    where = "inside a function" if node.col_offset else "at module level"
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {name} ({where})")
    return found


def to_review() -> list[str]:
    """Bare "api" / "web" strings in Python: a package named by a plain string (a set of names, a path part) that no
    table can tell from data (the case source "api"); listed for a reader, not changed."""
    done = subprocess.run(
        ["git", "grep", "-nE", r"""(^|[^/\w.])["'](api|web)["']([^/]|$)""", "--", "*.py", ":!scripts/relayout.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    return [
        line
        for line in done.stdout.splitlines()
        if "gridmap_api" not in line
        and "gridmap_web" not in line
        and not re.search(r"source|actor|SOURCE|\"api\": |== \"api\"|case_number\(\"api\"", line)
    ]


def compile_all() -> list[str]:
    bad = []
    for path in tracked_files():
        if path.suffix == ".py" and path.is_file():
            try:
                compile(path.read_text(encoding="utf-8"), str(path), "exec")
            except SyntaxError as exc:
                bad.append(f"{path.relative_to(ROOT)}: {exc}")
    return bad


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--map",
        action="append",
        default=[],
        metavar="gridmap.OLD=gridmap.PKG.NEW",
        help="place a module this script's table does not know (repeatable)",
    )
    parser.add_argument("--commit", action="store_true", help="commit the result as one commit")
    args = parser.parse_args(argv)
    extra = {}
    for item in args.map:
        old, _, new = item.partition("=")
        if not (old.startswith("gridmap.") and new.startswith("gridmap.") and new.count(".") == 2):
            refuse(f"--map {item!r}: expected gridmap.OLD=gridmap.PACKAGE.NEW")
        if new.split(".")[1] not in PACKAGES:
            refuse(f"--map {item!r}: {new.split('.')[1]} is not one of {', '.join(PACKAGES)}")
        extra[old.removeprefix("gridmap.")] = new.removeprefix("gridmap.")
    tables = Tables(extra)
    check_preconditions(tables)
    ruff = find_ruff()
    clean = before_linting(ruff)
    try:
        moved = move_files(tables)
        changed = rewrite_all(tables, moved)
        edit_pyproject()
        edit_readme()
        edit_changelog()
        after_linting(ruff, clean, renamed_paths())
    except BaseException:
        print(
            "relayout: stopped half way; `git reset -q --hard && git clean -fdq gridmap api web` restores the checkout",
            file=sys.stderr,
        )
        raise
    touched = [str(p.relative_to(ROOT)) for p in changed]
    touched += [p for p in git("diff", "--name-only").split() if p not in touched]  # ruff's edits
    git(
        "add",
        "--",
        *touched,
        "pyproject.toml",
        "README.md",
        *(["CHANGELOG.md"] if (ROOT / "CHANGELOG.md").exists() else []),
    )
    bad = compile_all()
    left = leftovers(tables)
    print(
        f"relayout: moved {len(tables.moves)} modules into {len(PACKAGES)} packages, api → gridmap_api, "
        f"web → gridmap_web; rewrote {len(changed)} files; staged (git diff --cached --stat)"
    )
    for line in bad:
        print(f"relayout: DOES NOT COMPILE {line}")
    for line in left:
        print(f"relayout: old name left: {line}")
    for line in upward_imports():
        print(f"relayout: points up (the README names four, in boundaries/generations): {line}")
    for line in to_review():
        print(f"relayout: review (a package named by a bare string?): {line}")
    if bad:
        return 1
    if args.commit:
        git(
            "commit",
            "-q",
            "-m",
            "Package layout by layer (issue 16 §6): gridmap/{geo,io,store,access,boundaries,"
            "locating,cases,planning,views}, api and web installed as gridmap_api and gridmap_web; one mechanical "
            "step, scripts/relayout.py (its docstring has the table)",
        )
        print("relayout: committed")
    print("relayout: now reinstall: .venv/bin/pip install --no-deps -e .")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

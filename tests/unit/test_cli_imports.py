"""The command line starts light: `gridmap --help` and the parser of `gridmap locate-file` import neither the ORM
nor the data-frame libraries (each command imports what it needs when it runs)."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("sqlalchemy", "geoalchemy2", "geopandas", "pandas", "numba", "pyproj", "gridmap.store.tables")


def _modules_after(code: str) -> set[str]:
    script = f"import sys\n{code}\nprint(' '.join(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return set(done.stdout.split())


def test_importing_the_cli_imports_nothing_heavy():
    loaded = _modules_after("import gridmap.cli")
    assert not loaded & set(HEAVY)


@pytest.mark.parametrize("argv", [["--help"], ["locate-file", "--help"], ["--database", "sqlite:///x.db", "--help"]])
def test_help_imports_nothing_heavy(argv):
    loaded = _modules_after(f"from gridmap.cli import main\ntry:\n    main({argv!r})\nexcept SystemExit:\n    pass")
    assert not loaded & set(HEAVY)


def test_a_command_gets_its_whole_parser():
    """Options made from other modules are there for the command named (and for a full `build_parser()`)."""
    from gridmap.access.policy import ROLES
    from gridmap.cli import build_parser

    for parser in (build_parser("user"), build_parser()):
        args = parser.parse_args(["user", "add", "ann", "--role", ROLES[0]])
        assert args.role == ROLES[0]
    args = build_parser("boundaries").parse_args(["boundaries", "check", "active"])
    from gridmap.boundaries import check as bc

    assert args.sliver_m2 == bc.SLIVER_M2
    # a word that names no command (an abbreviated option's value) gives the whole parser
    args = build_parser("sqlite:///x.db").parse_args(
        ["--data", "sqlite:///x.db", "user", "add", "ann", "--role", ROLES[0]]
    )
    assert args.role == ROLES[0]


def test_the_default_database_is_storages():
    from gridmap.locating import batch
    from gridmap.store import engine as storage

    assert batch.DEFAULT_DATABASE_URL == storage.DEFAULT_DATABASE_URL

"""`gridmap relocate` (#15 §7): every case re-located under a draft, in one process and on Dask distributed (a
LocalCluster of two single-threaded worker processes), with the same report; on SpatiaLite and PostGIS.

The draft moves the micro-grid of grid A holding the most cases under a neighbouring grid B (a fresh code there),
and one closed case is marked as placed by a dispatcher (`grid_chosen`) in a grid its point is not in, so the
report has cases moved by the redraw, kept by a dispatcher's choice, placed by the nearest-grid rule and in none.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
import shapely
import sqlalchemy as sa
from geoalchemy2.shape import to_shape

from gridmap import cli
from gridmap.boundaries import codes
from gridmap.boundaries.areas import active_generation, load_index
from gridmap.boundaries.generations import create_draft
from gridmap.calendar import CST
from gridmap.cases import measures
from gridmap.errors import InvalidInput, NotFound
from gridmap.planning import publish, relocate
from gridmap.planning.publish import _case_chains
from gridmap.store import engine as storage
from gridmap.store.tables import FINISHED_STATES, Area, Case, CaseEvent


@pytest.fixture(scope="module")
def client():
    """Two worker processes, one thread each: partitions really cross process boundaries (pickled)."""
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    c = Client(cluster)
    yield c
    c.close()
    cluster.close()


@pytest.fixture(scope="module")
def world(fresh_db_url):
    """The draft (see the module doc) committed in the module's own database."""
    engine = storage.make_engine(fresh_db_url)
    with storage.session_scope(storage.make_sessionmaker(engine)) as s:
        active = active_generation(s).id
        draft = create_draft(s, "relocate test").id
        areas = {a.code: a for a in s.scalars(sa.select(Area).where(Area.generation_id == draft))}
        counts = dict(s.execute(sa.select(Case.microgrid_code, sa.func.count()).group_by(Case.microgrid_code)).all())
        open_ = dict(
            s.execute(
                sa.select(Case.microgrid_code, sa.func.count())
                .where(Case.state.not_in(FINISHED_STATES))
                .group_by(Case.microgrid_code)
            ).all()
        )
        # the micro-grid with the most cases among those holding an open case (publishing will move it)
        micro = sorted(
            (a for a in areas.values() if a.level == "microgrid"),
            key=lambda a: (not open_.get(a.code), -counts.get(a.code, 0), a.code),
        )
        by_id = {a.id: a for a in areas.values()}
        for m in micro:
            grid_a = by_id[m.parent_id]
            shape = to_shape(m.geom)
            grid_b = next(
                (
                    g
                    for g in areas.values()
                    if g.level == "grid" and g.id != grid_a.id and shape.intersection(to_shape(g.geom)).length > 1e-4
                ),
                None,
            )
            if grid_b is not None and counts.get(m.code, 0) >= 3 and open_.get(m.code):
                break
        else:
            raise AssertionError("no micro-grid with cases touches another grid")
        old_code = m.code
        (new_code,) = codes.new_codes(s, grid_b.code, "microgrid", 1, draft)
        m.parent_id, m.code = grid_b.id, new_code
        # a closed case a dispatcher put in a grid its point is not in (another leaf of the same draft)
        chosen_leaf = next(
            a
            for a in micro
            if a.code not in (old_code, new_code) and by_id[a.parent_id].id not in (grid_a.id, grid_b.id)
        )
        case = s.scalars(
            sa.select(Case).where(Case.state == "closed", Case.microgrid_code != old_code).order_by(Case.id).limit(1)
        ).one()
        case.locate_flags = ["grid_chosen"]
        case.microgrid_code = chosen_leaf.code
        case.grid_code = by_id[chosen_leaf.parent_id].code
        case.community_code = by_id[by_id[chosen_leaf.parent_id].parent_id].code
        chosen = (case.id, chosen_leaf.code, by_id[chosen_leaf.parent_id].code)
        s.flush()
        moved_ids = set(s.scalars(sa.select(Case.id).where(Case.microgrid_code == old_code)))
    engine.dispose()
    return {
        "url": fresh_db_url,
        "active": active,
        "draft": draft,
        "old": old_code,
        "new": new_code,
        "grid_a": grid_a.code,
        "grid_b": grid_b.code,
        "moved_ids": moved_ids,
        "chosen": chosen,
        "shape": shape,
    }


def test_placement_is_publishings_rule(world):
    """`relocate.place`, the vectorised placement, puts every case in the leaf `publish._case_chains` does."""
    engine = storage.make_engine(world["url"])
    with storage.make_sessionmaker(engine)() as s:
        index = load_index(s, world["draft"])
        rows = s.execute(
            sa.select(Case.lon, Case.lat, Case.locate_flags, Case.grid_code, Case.microgrid_code)
            .where(Case.lon.is_not(None))
            .order_by(Case.id)
        ).all()
    engine.dispose()
    lon = np.array([r.lon for r in rows])
    lat = np.array([r.lat for r in rows])
    flags = [r.locate_flags for r in rows]
    stored = [r.microgrid_code or r.grid_code for r in rows]
    leaf, method = relocate.place(index, lon, lat, [bool(f) and "grid_chosen" in f for f in flags], stored)
    expected = [chain[-1].code if chain else None for chain in _case_chains(index, lon, lat, flags, stored)]
    got = [index.leaves[i].code if i >= 0 else None for i in leaf]
    assert got == expected
    assert {"inside", "nearest", "chosen", "none"} <= set(method)


def test_single_machine_report(world, tmp_path):
    report, per_grid, totals = relocate.relocate(world["url"], world["draft"], rows_per_partition=40)
    assert list(report.columns) == relocate.COLUMNS
    assert report["case_id"].is_monotonic_increasing and report["case_id"].is_unique
    engine = storage.make_engine(world["url"])
    with storage.make_sessionmaker(engine)() as s:
        located = s.scalar(sa.select(sa.func.count()).select_from(Case).where(Case.lon.is_not(None)))
        states = dict(s.execute(sa.select(Case.id, Case.state)).all())
    engine.dispose()
    assert len(report) == located and totals["partitions"] >= 5
    by_id = report.set_index("case_id")
    # the cases of the moved micro-grid whose point lies in it: to grid B under the new code, grid changed
    inside = [
        i for i in world["moved_ids"] if world["shape"].covers(shapely.Point(by_id.at[i, "lon"], by_id.at[i, "lat"]))
    ]
    assert len(inside) >= 3
    for i in inside:
        row = by_id.loc[i]
        assert (row["old_microgrid_code"], row["new_microgrid_code"]) == (world["old"], world["new"])
        assert (row["old_grid_code"], row["new_grid_code"]) == (world["grid_a"], world["grid_b"])
        assert row["changed"] and row["grid_changed"] and row["method"] == "inside"
        assert row["open"] == (states[i] not in FINISHED_STATES)
    # the dispatcher's choice holds under the draft (the leaf still exists)
    case_id, leaf, grid = world["chosen"]
    assert (by_id.at[case_id, "new_microgrid_code"], by_id.at[case_id, "new_grid_code"]) == (leaf, grid)
    assert by_id.at[case_id, "method"] == "chosen" and not by_id.at[case_id, "changed"]
    # every other case lands where it lands under the active generation (the draft differs by that micro-grid)
    current = relocate.relocate(world["url"], world["active"])[0].set_index("case_id")
    expected_micro = current["new_microgrid_code"].replace({world["old"]: world["new"]})
    assert by_id["new_microgrid_code"].equals(expected_micro)
    expected_grid = current["new_grid_code"].where(current["new_microgrid_code"] != world["old"], world["grid_b"])
    assert by_id["new_grid_code"].equals(expected_grid)
    # the new branch is the branch grid B keeps; the summary adds up
    b_rows = report[report["new_grid_code"] == world["grid_b"]]
    assert b_rows["new_branch_id"].nunique() == 1 and b_rows["new_branch_id"].notna().all()
    summary = per_grid.set_index("grid_code")
    assert summary.at[world["grid_a"], "moved_out"] >= len(inside)
    assert summary.at[world["grid_b"], "moved_in"] >= len(inside)
    assert summary["moved_out"].sum() == int((report["grid_changed"] & report["old_grid_code"].notna()).sum())
    assert summary["moved_in"].sum() == int((report["grid_changed"] & report["new_grid_code"].notna()).sum())
    assert summary["cases_after"].sum() == int(report["new_grid_code"].notna().sum())
    assert (
        summary.at[world["grid_b"], "cases_after"]
        == summary.at[world["grid_b"], "cases_before"]
        + summary.at[world["grid_b"], "moved_in"]
        - summary.at[world["grid_b"], "moved_out"]
    )
    assert totals["grid_changed"] == int(report["grid_changed"].sum()) and totals["cases"] == located
    # the database is not changed by a report
    engine = storage.make_engine(world["url"])
    with storage.make_sessionmaker(engine)() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(Case).where(Case.microgrid_code == world["new"])) == 0
    engine.dispose()


def test_dask_local_cluster_gives_the_same_report(world, client, tmp_path):
    """Two worker processes read the id ranges from the database, the index scattered to both: the same report,
    row for row, as the single-machine path."""
    assert len(client.scheduler_info()["workers"]) == 2
    single = relocate.relocate(world["url"], world["draft"], rows_per_partition=40)
    spread = relocate.relocate(world["url"], world["draft"], client=client, rows_per_partition=40)
    assert single[2]["partitions"] >= 5
    pd.testing.assert_frame_equal(single[0], spread[0])
    pd.testing.assert_frame_equal(single[1], spread[1])
    assert single[2] == spread[2]
    assert spread[0]["changed"].sum() >= 3
    # written a partition at a time from the Dask path: the same rows
    written = relocate.relocate(
        world["url"], world["draft"], client=client, rows_per_partition=40, out=tmp_path / "spread.parquet"
    )
    assert written[0] is None and written[2] == single[2]
    pd.testing.assert_frame_equal(written[1], single[1])
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "spread.parquet"), single[0])
    # and it is not the active generation's report
    current = relocate.relocate(world["url"], world["active"], rows_per_partition=40)
    assert current[0]["new_microgrid_code"].ne(spread[0]["new_microgrid_code"]).sum() >= 3


def test_cli_writes_the_report_and_refuses_bad_arguments(world, tmp_path, capsys):
    out, summary = tmp_path / "moves.parquet", tmp_path / "grids.csv"
    assert (
        cli.main(
            [
                "--database",
                world["url"],
                "relocate",
                "--generation",
                str(world["draft"]),
                "--out",
                str(out),
                "--summary",
                str(summary),
                "--rows-per-partition",
                "100",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    report, per_grid, _ = relocate.relocate(world["url"], world["draft"])
    written = pd.read_parquet(out)
    pd.testing.assert_frame_equal(written, report, check_dtype=False)
    assert f'"changed": {int(report["changed"].sum())}' in printed
    assert len(pd.read_csv(summary)) == len(per_grid)
    assert cli.main(["--database", world["url"], "relocate", "--generation", "999999"]) == 2
    assert "999999" in capsys.readouterr().err
    assert cli.main(["--database", world["url"], "relocate", "--generation", "active", "--scheduler", "local:0"]) == 2
    assert "local:N" in capsys.readouterr().err
    assert cli.main(["--database", world["url"], "relocate", "--generation", "active", "--out", "x.csv"]) == 2


def test_bad_arguments_in_both_languages(world):
    with pytest.raises(NotFound) as missing:
        relocate.relocate(world["url"], 999999)
    assert missing.value.zh and "999999" in missing.value.zh
    for bad in ("local:0", "local:65", "local:x", "http://host:8786", "tcp://a b", "", "tcp://" + "a" * 300):
        with pytest.raises(InvalidInput) as refused:
            relocate.check_scheduler(bad)
        assert refused.value.field == "scheduler" and refused.value.zh
    assert relocate.check_scheduler("tcp://10.0.0.5:8786") == "tcp://10.0.0.5:8786"
    with pytest.raises(InvalidInput) as rows:
        relocate.relocate(world["url"], world["draft"], rows_per_partition=0)
    assert rows.value.field == "rows_per_partition" and rows.value.zh


def _china_months(first: dt.date, n: int) -> list[dt.datetime]:
    """n + 1 month starts (00:00 China time) from `first`, as UTC instants."""
    out, year, month = [], first.year, first.month
    for _ in range(n + 1):
        out.append(dt.datetime(year, month, 1, tzinfo=CST).astimezone(dt.UTC))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


def test_received_by_month_over_years_equals_measures(world, client):
    """Last in the module: it activates the draft, so publishing re-locates the open cases of the moved
    micro-grid (boundary_change events); received counts per grid and month over two years, summed from id-range
    partitions in one process and on Dask, equal `measures.measures` month by month — each case counted in the
    grid it was in when it was received."""
    engine = storage.make_engine(world["url"])
    with storage.session_scope(storage.make_sessionmaker(engine)) as s:
        moved = publish.activate_generation(s, world["draft"], publish.local_today(), actor="test")["cases_relocated"]
    assert moved >= 1
    edges = _china_months(dt.date(2025, 1, 1), 24)
    single = relocate.received_by_month(world["url"], edges, rows_per_partition=40)
    spread = relocate.received_by_month(world["url"], edges, client=client, rows_per_partition=40)
    pd.testing.assert_frame_equal(single, spread)
    with storage.make_sessionmaker(engine)() as s:
        assert (
            s.scalar(sa.select(sa.func.count()).select_from(CaseEvent).where(CaseEvent.action == "boundary_change"))
            >= 1
        )
        counted = 0
        for k in range(len(edges) - 1):
            _, table = measures.measures(s, "grid", since=edges[k], until=edges[k + 1])
            expected = {
                row.key: row.received for row in table.itertuples() if row.key != measures.TOTAL_KEY and row.received
            }
            month = single[single["month"] == k]
            got = dict(zip(month["grid_code"], month["received"]))
            none = got.pop(measures.NO_UNIT, 0)  # cases in no grid: in measures' total only
            assert got == expected, edges[k]
            assert sum(got.values()) + none == int(table.loc[table["key"] == measures.TOTAL_KEY, "received"].iloc[0])
            counted += sum(got.values()) + none
        # and the rule mattered: counted by the grid the cases have now, some month would differ
        now = pd.DataFrame(s.execute(sa.select(Case.reported_at, Case.grid_code)).all(), columns=["at", "grid"])
    engine.dispose()
    assert counted == int(single["received"].sum()) > 250
    at = pd.to_datetime(now["at"], utc=True).astype("datetime64[us, UTC]").array.asi8
    bounds = pd.DatetimeIndex(edges).astype("datetime64[us, UTC]").asi8
    now["month"] = np.searchsorted(bounds, at, side="right") - 1
    naive = now[now["grid"].notna()].groupby(["month", "grid"]).size()
    ours = single[single["grid_code"] != measures.NO_UNIT].set_index(["month", "grid_code"])["received"]
    differ = naive.sub(ours.rename_axis(["month", "grid"]), fill_value=0)
    assert differ.abs().sum() >= 2 * moved and differ.sum() == 0  # out of one grid, into another

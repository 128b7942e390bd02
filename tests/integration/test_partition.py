"""Suggest a balanced partition (issue 13 §5) on both databases, on the small demo (4 communities of 6 micro-grids).

Every community is asked for n = 1, its current count and the counts either side. What the proposal must meet is
checked independently of gridmap.planning.partition: the micro-grids' adjacency is recomputed here from the stored
geometry,
and a brute force over every assignment of the 6 micro-grids to n grids (at most 4⁶) finds which n can meet the
tolerance with contiguous grids and the fewest households any such plan moves (parts matched to current grids by
trying every matching). The proposal must meet the tolerance and contiguity exactly when the brute force says it
can, move no more households than the brute force's minimum (which it then equals), and be refused (422 naming n,
with the best found) when it cannot. Proposals opened as drafts pass the boundary check and leave everything
outside the community as it was. Each dialect gets a database of its own (`fresh_db_url`): the tests add drafts.
"""

from __future__ import annotations

import itertools
import json
import random
from functools import partial

import networkx as nx
import pytest
import shapely
import sqlalchemy as sa
from fastapi.testclient import TestClient
from geoalchemy2.shape import to_shape
from gerrychain import Graph
from gerrychain.partition import recursive_tree_part
from gerrychain.tree import bipartition_tree

from gridmap import cli
from gridmap.boundaries import check as boundary_check
from gridmap.boundaries import generations as gens
from gridmap.errors import Conflict, InvalidInput, NotFound
from gridmap.planning import partition
from gridmap.store.tables import Area, Generation
from gridmap_api.main import create_app
from gridmap_api.settings import Settings

PLANNER = {"X-User": "p1", "X-Role": "planner"}
WORKER = {"X-User": "w1", "X-Role": "worker"}
TILING = {"invalid_geometry", "gap", "overlap", "hole", "outside_parent", "duplicate_code", "bad_code"}


@pytest.fixture()
def session(client):
    """A session on the module's database whose writes are rolled back."""
    with client.app.state.sessionmaker() as s:
        yield s
        s.rollback()


def _active(session) -> int:
    return session.scalar(sa.select(Generation.id).where(Generation.status == "active"))


# -- the independent statement of what a plan must meet ------------------------------------------------------------


class Community:
    """A community as the test sees it: micro-grids, their grids, households and adjacency (from geometry)."""

    def __init__(self, session, generation_id: int, code: str):
        rows = session.execute(
            sa.select(Area.code, Area.households, Area.geom, Area.parent_id)
            .where(Area.generation_id == generation_id, Area.level == "microgrid", Area.code.startswith(code))
            .order_by(Area.code)
        ).all()
        grid_code = dict(
            session.execute(
                sa.select(Area.id, Area.code).where(Area.generation_id == generation_id, Area.level == "grid")
            ).all()
        )
        self.code = code
        self.units = [r.code for r in rows]
        self.households = {r.code: int(r.households) for r in rows}
        self.grid = {r.code: grid_code[r.parent_id] for r in rows}
        self.grids = sorted(set(self.grid.values()))
        geoms = {r.code: to_shape(r.geom) for r in rows}
        self.adjacent = nx.Graph()
        self.adjacent.add_nodes_from(self.units)
        for a, b in itertools.combinations(self.units, 2):
            if geoms[a].boundary.intersection(geoms[b].boundary).length > 0:  # a shared edge, not a point
                self.adjacent.add_edge(a, b)
        self.total = sum(self.households.values())

    def meets(self, parts: list[list[str]], tolerance: float) -> bool:
        mean = self.total / len(parts)
        return all(parts) and all(
            abs(sum(self.households[u] for u in p) - mean) <= tolerance * mean + 1e-9
            and nx.is_connected(self.adjacent.subgraph(p))
            for p in parts
        )

    def moved(self, parts: list[list[str]]) -> int:
        """Households that change grid under the best matching of parts to current grids (every matching tried)."""
        overlap = [[sum(self.households[u] for u in p if self.grid[u] == g) for g in self.grids] for p in parts]
        k, m = len(parts), len(self.grids)
        if k <= m:
            kept = max(sum(overlap[i][g] for i, g in enumerate(perm)) for perm in itertools.permutations(range(m), k))
        else:
            kept = max(sum(overlap[p][g] for g, p in enumerate(perm)) for perm in itertools.permutations(range(k), m))
        return self.total - kept

    def brute_force(self, n: int, tolerance: float) -> int | None:
        """The fewest households moved by any plan of n contiguous parts within the tolerance; None if none."""
        best = None
        for labels in itertools.product(range(n), repeat=len(self.units)):
            if (
                labels[0] != 0
                or max(labels) != n - 1
                or any(labels[i] > max(labels[:i]) + 1 for i in range(1, len(labels)))
            ):
                continue  # each plan once: parts numbered in order of their first micro-grid
            parts = [[u for u, lab in zip(self.units, labels) if lab == p] for p in range(n)]
            if self.meets(parts, tolerance):
                moved = self.moved(parts)
                best = moved if best is None else min(best, moved)
        return best


def _parts(proposal: dict) -> list[list[str]]:
    return [g["microgrids"] for g in proposal["grids"]]


def _communities(session, generation_id: int) -> list[str]:
    return list(
        session.scalars(
            sa.select(Area.code)
            .where(Area.generation_id == generation_id, Area.level == "community")
            .order_by(Area.code)
        )
    )


# -- every community, several n ------------------------------------------------------------------------------------


def test_every_community_meets_the_tolerance_or_is_refused(session):
    gen = _active(session)
    asked = feasible = 0
    for code in _communities(session, gen):
        com = Community(session, gen, code)
        current = len(com.grids)
        for n in sorted({1, current - 1, current, current + 1} - {0}):
            asked += 1
            best = com.brute_force(n, 0.10)
            if best is None:
                with pytest.raises(InvalidInput) as err:
                    partition.propose(session, gen, code, n)
                assert err.value.field == "n" and f"n={n}" in err.value.message and "±10%" in err.value.message
                assert "最好" in err.value.zh and "best found" in err.value.message
                continue
            feasible += 1
            proposal = partition.propose(session, gen, code, n)
            parts = _parts(proposal)
            assert len(parts) == n and sorted(u for p in parts for u in p) == com.units
            assert com.meets(parts, 0.10), (code, n, proposal)
            assert all(g["contiguous"] and abs(g["deviation"]) <= 0.10 for g in proposal["grids"])
            assert proposal["moved_households"] == com.moved(parts) == best, (code, n, proposal["method"])
            if n == current:  # the demo's grids already meet ±10 %: nothing moves
                assert best == 0 and proposal["method"] == "current"
    assert asked >= 12 and feasible >= 8


def test_the_demo_community_refuses_four_grids_with_the_best_it_found(session):
    """Six micro-grids of 500 households cannot make 4 grids of 750 ± 10 %: the best is 1,000 / 750 (±33.3 %)."""
    gen = _active(session)
    with pytest.raises(InvalidInput) as err:
        partition.propose(session, gen, "530111001001", 4)
    assert err.value.field == "n" and "±33.3%" in err.value.message
    with pytest.raises(InvalidInput) as err:
        partition.propose(session, gen, "530111001001", 4, tolerance=0.05)
    assert "±33.3%" in err.value.message
    wide = partition.propose(session, gen, "530111001001", 4, tolerance=0.34)  # ±34 % admits it
    assert sorted(g["households"] for g in wide["grids"]) == [500, 500, 1000, 1000]


def test_same_seed_same_proposal(session):
    gen = _active(session)
    for code, n in (("530111001001", 2), ("530111002001", 3), ("530111002002", 3)):
        first = partition.propose(session, gen, code, n, seed=7)
        assert partition.propose(session, gen, code, n, seed=7) == first
        assert json.dumps(first, sort_keys=True) == json.dumps(
            partition.propose(session, gen, code, n, seed=7), sort_keys=True
        )


def _unbalance(session, households: dict[str, int]) -> int:
    """A draft whose micro-grids hold other household counts (the current grids no longer meet ±10 %)."""
    draft = gens.create_draft(session, "不均衡")
    for code, value in households.items():
        session.execute(
            sa.update(Area).where(Area.generation_id == draft.id, Area.code == code).values(households=value)
        )
    session.flush()
    return draft.id


UNBALANCED = [
    # 六甲社区: grid 1 = 0101 + 0102, grid 2 = 0201 + 0202 (600 + 600), grid 3 = 0301 + 0302 (400 + 400): one plan
    (
        "530111001001",
        {"53011100100100201": 600, "53011100100100202": 600, "53011100100100301": 400, "53011100100100302": 400},
    ),
    # 文化社区: grid 1 = 0101–0103 (300 each), grid 2 = 0201 (500), 0202 (700), 0203 (900): plans moving 500 or 700
    (
        "530111002001",
        {
            "53011100200100101": 300,
            "53011100200100102": 300,
            "53011100200100103": 300,
            "53011100200100201": 500,
            "53011100200100202": 700,
            "53011100200100203": 900,
        },
    ),
]


@pytest.mark.parametrize("code,households", UNBALANCED)
def test_an_unbalanced_community_moves_no_more_than_an_unconstrained_plan(session, code, households):
    draft = _unbalance(session, households)
    com = Community(session, draft, code)
    n = len(com.grids)
    assert not com.meets([[u for u in com.units if com.grid[u] == g] for g in com.grids], 0.10)
    best = com.brute_force(n, 0.10)
    assert best is not None and best > 0
    proposal = partition.propose(session, draft, code, n)
    assert com.meets(_parts(proposal), 0.10) and proposal["moved_households"] == best
    # GerryChain's recursive tree partition alone (no regard for the current grids), ten seeds
    graph = nx.convert_node_labels_to_integers(com.adjacent, ordering="sorted")
    for i, u in enumerate(com.units):
        graph.nodes[i]["hh"] = com.households[u]
    unconstrained = []
    for seed in range(10):
        flips = recursive_tree_part(
            Graph.from_networkx(graph.copy()),
            range(n),
            com.total / n,
            "hh",
            0.10,
            bipartition_tree_fn=partial(bipartition_tree, max_attempts=500),
            rng=random.Random(seed),
        )
        parts = [[com.units[i] for i, p in flips.items() if p == part] for part in range(n)]
        assert com.meets(parts, 0.10)
        unconstrained.append(com.moved(parts))
    assert proposal["moved_households"] <= min(unconstrained)


# -- the draft -----------------------------------------------------------------------------------------------------


def _rows(session, generation_id: int) -> dict[str, Area]:
    return {a.code: a for a in session.scalars(sa.select(Area).where(Area.generation_id == generation_id))}


@pytest.mark.parametrize("code,n", [("530111002001", 3), ("530111001001", 2), ("530111002002", 1), ("530111001002", 3)])
def test_the_proposal_opens_as_a_draft_that_tiles_exactly(session, code, n):
    gen = _active(session)
    before = _rows(session, gen)
    proposal = partition.propose(session, gen, code, n, seed=3)
    out = partition.open_as_draft(session, proposal, actor="a1")
    draft = session.get(Generation, out["generation_id"])
    assert draft.status == "draft" and draft.base_id == gen and draft.created_by == "a1"
    after = _rows(session, draft.id)
    # outside the community nothing changed
    outside = {c for c in before if not c.startswith(code)}
    assert outside == {c for c in after if not c.startswith(code)}
    for c in outside:
        a, b = before[c], after[c]
        assert (a.name, a.households, a.population, a.level) == (b.name, b.households, b.population, b.level)
        assert to_shape(a.geom).equals_exact(to_shape(b.geom), 0)
    assert to_shape(before[code].geom).equals_exact(to_shape(after[code].geom), 0)  # the outline is unchanged
    # the grids: as proposed, matched ones keep their codes, new ones get new codes, dropped ones are gone
    grids = sorted(c for c, a in after.items() if a.level == "grid" and c.startswith(code))
    assert grids == sorted(g["code"] for g in out["grids"]) and len(grids) == n
    old_grids = {c for c, a in before.items() if a.level == "grid" and c.startswith(code)}
    kept = [g for g in out["grids"] if not g["new"]]
    assert {g["code"] for g in kept} <= old_grids and {g["code"] for g in out["grids"] if g["new"]}.isdisjoint(
        set(before)
    )
    assert set(out["retired"]) & old_grids == old_grids - set(grids)
    by_old = {u: g for g in proposal["grids"] for u in g["microgrids"]}
    moved_households = 0
    for g in out["grids"]:
        row = after[g["code"]]
        members = [after[u] for u in g["microgrids"]]
        assert all(m.parent_id == row.id and m.code.startswith(row.code) and m.level == "microgrid" for m in members)
        assert row.households == g["households"] == sum(m.households for m in members)
        assert row.population == g["population"] == sum(m.population for m in members)
        union = shapely.union_all([to_shape(m.geom) for m in members])
        assert to_shape(row.geom).symmetric_difference(union).area < 1e-14
    for old_code in by_old:
        if old_code in after:  # kept its code: it stayed in its grid
            assert after[old_code].parent.code == before[old_code].parent.code
        else:  # moved: a new code under its new grid, the old one retired
            assert old_code in out["retired"]
            moved_households += before[old_code].households
    assert moved_households == out["moved_households"] == proposal["moved_households"]
    assert set(out["created"]).isdisjoint(before) and set(out["created"]) <= set(after)
    report = boundary_check.check_generation(session, draft.id)
    assert not [p for p in report["problems"] if p["kind"] in TILING], report["problems"][:3]
    assert report["ok"]


def test_some_adjacent_grids_of_a_community(session):
    """六甲社区's grids 1 and 3 share an edge (0102 | 0301); grid 2 stays as it is."""
    gen = _active(session)
    before = _rows(session, gen)
    g1, g2, g3 = "530111001001001", "530111001001002", "530111001001003"
    proposal = partition.propose(session, gen, "530111001001", 4, grids=[g3, g1])
    assert proposal["from_grids"] == [g1, g3] and proposal["households"] == 2000
    assert sorted(g["households"] for g in proposal["grids"]) == [500] * 4
    assert {g["code"] for g in proposal["grids"]} - {None} == {g1, g3} and proposal["moved_households"] == 1000
    out = partition.open_as_draft(session, proposal)
    after = _rows(session, out["generation_id"])
    assert to_shape(after[g2].geom).equals_exact(to_shape(before[g2].geom), 0)
    assert {c for c in after if c.startswith(g2)} == {c for c in before if c.startswith(g2)}
    assert len([a for a in after.values() if a.level == "grid" and a.code.startswith("530111001001")]) == 5
    assert boundary_check.check_generation(session, out["generation_id"])["ok"]
    merged = partition.propose(session, gen, "530111001001", 1, grids=[g1, g3])
    assert [g["households"] for g in merged["grids"]] == [2000] and merged["retired"] in ([g1], [g3])
    for grids in ([g1, g2], [g1, "530111002001001"], [g1, g1], []):  # not adjacent, another community's, twice
        with pytest.raises(InvalidInput) as err:
            partition.propose(session, gen, "530111001001", 2, grids=grids)
        assert err.value.field == "grids"
    with pytest.raises(InvalidInput) as err:
        partition.propose(session, gen, "530111001001", 5, grids=[g1, g3])
    assert err.value.field == "n" and "所选网格只有 4 个微网格" in err.value.zh


def test_locked_grids_are_not_repartitioned(session):
    draft = gens.create_draft(session, "锁定")
    locked = "530111002002002"
    session.execute(sa.update(Area).where(Area.generation_id == draft.id, Area.code == locked).values(locked=True))
    session.flush()
    with pytest.raises(Conflict) as err:
        partition.propose(session, draft.id, "530111002002", 3)
    assert err.value.field == "area" and locked in err.value.message
    with pytest.raises(Conflict) as err:
        partition.propose(session, draft.id, "530111002002", 2, grids=["530111002002001", locked])
    assert err.value.field == "grids"
    out = partition.partition(session, draft.id, "530111002002", 2, 0.34, grids=["530111002002001"])
    rows = _rows(session, out["generation_id"])
    assert rows[locked].locked and to_shape(rows[locked].geom).equals_exact(
        to_shape(_rows(session, draft.id)[locked].geom), 0
    )
    assert sorted(g["households"] for g in out["grids"]) == [500, 1000]


# -- the API and the CLI -------------------------------------------------------------------------------------------


def test_planner_gets_a_committed_draft(client):
    with client.app.state.sessionmaker() as s:
        gen = _active(s)
    r = client.post(
        f"/api/v1/generations/{gen}/partition",
        headers=PLANNER,
        json={"area": "530111002001", "n": 3, "seed": 5, "name": "文化社区三网格"},
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert r.headers["location"] == f"/api/v1/generations/{body['generation_id']}"
    assert body["n"] == 3 and body["tolerance"] == 0.10 and body["source_generation_id"] == gen
    assert len(body["grids"]) == 3 and sum(g["new"] for g in body["grids"]) == 1
    assert all(abs(g["deviation"]) <= 0.10 and g["contiguous"] and 0 < g["polsby_popper"] <= 1 for g in body["grids"])
    with client.app.state.sessionmaker() as s:  # committed before the answer
        draft = s.get(Generation, body["generation_id"])
        assert draft.name == "文化社区三网格" and draft.status == "draft" and draft.created_by
        assert {g["code"] for g in body["grids"]} <= set(_rows(s, draft.id))
    check = client.get(f"/api/v1/generations/{body['generation_id']}/check", headers=PLANNER).json()
    assert check["ok"] and not [p for p in check["problems"] if p["kind"] in TILING]
    # the draft can be partitioned again (back to 2 grids)
    again = client.post(
        f"/api/v1/generations/{body['generation_id']}/partition", headers=PLANNER, json={"area": "530111002001", "n": 2}
    )
    assert again.status_code == 201 and again.json()["source_generation_id"] == body["generation_id"]


def test_worker_is_refused_and_other_areas_are_not_found(client, fresh_db_url):
    url = "/api/v1/generations/1/partition"
    body = {"area": "530111001001", "n": 3}
    assert client.post(url, headers=WORKER, json=body).status_code == 403
    other = client.post(url, headers={**PLANNER, "X-Areas": "530111002"}, json=body)
    assert other.status_code == 404 and other.json()["field"] == "area"
    with TestClient(create_app(Settings(database_url=fresh_db_url))) as anonymous:
        assert anonymous.post(url, json=body).status_code == 401


@pytest.mark.parametrize(
    "body,status,field",
    [
        ({"area": "530111001001", "n": 0}, 422, "n"),
        ({"area": "530111001001", "n": 51}, 422, "n"),
        ({"area": "530111001001", "n": "三"}, 422, "n"),
        ({"area": "530111001001", "n": 7}, 422, "n"),  # more grids than its 6 micro-grids
        ({"area": "530111001001", "n": 4}, 422, "n"),  # the units cannot meet ±10 %
        ({"area": "530111001001", "n": 3, "tolerance": 0}, 422, "tolerance"),
        ({"area": "530111001001", "n": 3, "tolerance": 0.9}, 422, "tolerance"),
        ({"area": "530111001001", "n": 3, "seed": -1}, 422, "seed"),
        ({"area": "530111001001", "n": 3, "colour": "red"}, 422, "colour"),
        ({"area": "530111001001001", "n": 2}, 422, "area"),  # a grid, not a community
        ({"area": "530111001", "n": 2}, 422, "area"),  # a sub-district
        ({"area": "530111009009", "n": 2}, 404, "area"),  # no such area
        ({"area": "", "n": 2}, 422, "area"),
        ({"area": "530111001001", "n": 2, "grids": []}, 422, "grids"),
        ({"area": "530111001001", "n": 2, "grids": ["530111001001001", "530111001001002"]}, 422, "grids"),
    ],
)
def test_bad_requests_name_the_field(client, body, status, field):
    r = client.post("/api/v1/generations/1/partition", headers=PLANNER, json=body)
    assert r.status_code == status, r.text
    assert r.json()["field"] == field and r.headers["content-type"] == "application/problem+json"


def test_unknown_generation_and_an_area_of_another_generation(client):
    missing = client.post(
        "/api/v1/generations/987654/partition", headers=PLANNER, json={"area": "530111001001", "n": 3}
    )
    assert missing.status_code == 404 and missing.json()["field"] == "generation"
    made = client.post("/api/v1/generations/1/partition", headers=PLANNER, json={"area": "530111002002", "n": 3})
    assert made.status_code == 201
    new_grid = next(g["code"] for g in made.json()["grids"] if g["new"])
    with client.app.state.sessionmaker() as s:  # a community code that only a draft has
        s.execute(
            sa.update(Area)
            .where(Area.generation_id == made.json()["generation_id"], Area.code == "530111002002")
            .values(code="530111002099")
        )
        s.commit()
    r = client.post("/api/v1/generations/1/partition", headers=PLANNER, json={"area": "530111002099", "n": 2})
    assert r.status_code == 404 and r.json()["field"] == "area"
    r = client.post("/api/v1/generations/1/partition", headers=PLANNER, json={"area": new_grid, "n": 2})
    assert r.status_code == 404 and r.json()["field"] == "area"  # the draft's new grid is not in generation 1


def test_domain_refusals(session):
    gen = _active(session)
    with pytest.raises(NotFound) as err:
        partition.propose(session, gen, "530111001009", 2)
    assert err.value.field == "area"
    with pytest.raises(InvalidInput) as err:
        partition.propose(session, gen, "530111001001", 2, tolerance=float("nan"))
    assert err.value.field == "tolerance"
    with pytest.raises(InvalidInput) as err:
        partition.propose(session, gen, "530111001001", True)
    assert err.value.field == "n"


def test_cli(client, fresh_db_url, capsys):
    base = ["--database", fresh_db_url, "boundaries", "partition"]
    assert cli.main([*base, "active", "--area", "530111001002", "--n", "2", "--dry-run"]) == 0
    dry = json.loads(capsys.readouterr().out)
    assert dry["n"] == 2 and "created" not in dry
    with client.app.state.sessionmaker() as s:
        drafts = s.scalar(sa.select(sa.func.count()).select_from(Generation))
    assert cli.main([*base, "active", "--area", "530111001002", "--n", "2"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["moved_households"] == dry["moved_households"] and out["generation_id"] > 0
    with client.app.state.sessionmaker() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(Generation)) == drafts + 1
    assert cli.main([*base, "active", "--area", "530111001002", "--n", "4"]) == 2
    assert "n/tolerance" in capsys.readouterr().err
    assert cli.main([*base, "草稿", "--area", "530111001002", "--n", "2"]) == 2
    assert (
        cli.main(
            [
                *base,
                "active",
                "--area",
                "530111001002",
                "--n",
                "1",
                "--dry-run",
                "--grids",
                "530111001002001,530111001002002",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["from_grids"] == ["530111001002001", "530111001002002"]

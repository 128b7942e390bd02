"""Locust user classes for the mixed load test of issue 15 §8 (run by tests/benchmarks/load.py, or by hand:
`.venv-load/bin/locust -f tests/benchmarks/locustfile.py --host http://127.0.0.1:8000` with GRIDMAP_LOAD_PLAN
naming the plan file load.py writes).

Three kinds of user, in the proportions of a district's day:

- `Dispatcher` (demo-dispatcher, the whole district; weight 3): the console polls its queue counts and
  notifications every few seconds, pages and filters the case list, opens the map (tiles) now and then.
- `GridManager` (demo-manager, one community; weight 2): the map of their community (area and case tiles),
  the community's open cases, a locate of a point someone phoned about, their notifications.
- `IntakeClient` (weight 2): the systems that file cases — the 12345 hotline integration (native API,
  `X-API-Key` with the `hotline` scope) and residents' apps through Open311 (`api_key` with the `report` scope) —
  and the locate calls those apps make before they submit.

Every request carries a `name` (the operation), so the figures come per operation whatever the ids in the path;
any answer other than 2xx/304 is a failure in locust's count for that operation.
"""

from __future__ import annotations

import json
import os
import random

from locust import HttpUser, between, events, task

PASSWORD = os.environ.get("GRIDMAP_LOAD_PASSWORD", "gridmap-demo-2026")  # gridmap.demo.accounts.DEMO_PASSWORD
_plan: dict | None = None

# every path the users ask for, as the app's OpenAPI names it (tests/unit/test_locustfile.py checks them)
PATHS = {
    "token": ("post", "/api/v1/auth/token"),
    "queues": ("get", "/api/v1/queues"),
    "notifications": ("get", "/api/v1/notifications"),
    "cases": ("get", "/api/v1/cases"),
    "case": ("get", "/api/v1/cases/{case_id}"),
    "tile": ("get", "/api/v1/tiles/{layer}/{z}/{x}/{y}.mvt"),
    "locate": ("get", "/api/v1/locate"),
    "intake": ("post", "/api/v1/cases"),
    "open311": ("post", "/open311/v2/requests.{fmt}"),
}


def plan() -> dict:
    """What the users need to know about the database under test (points inside grids, area codes, categories,
    tiles over the district, API keys), written by load.py as JSON to the file named by GRIDMAP_LOAD_PLAN."""
    global _plan
    if _plan is None:
        path = os.environ.get("GRIDMAP_LOAD_PLAN")
        if not path:
            raise RuntimeError("GRIDMAP_LOAD_PLAN is not set: run tests/benchmarks/load.py, which writes the plan")
        with open(path, encoding="utf-8") as fh:
            _plan = json.load(fh)
    return _plan


@events.init.add_listener
def _read_plan(environment, **_kwargs) -> None:
    if os.environ.get("GRIDMAP_LOAD_PLAN"):
        plan()  # fail at start, not in every user


def _point() -> tuple[float, float]:
    """A point inside a grid of the demo, moved a few metres as a phone's GPS would."""
    lon, lat = random.choice(plan()["points"])
    return lon + random.uniform(-2e-5, 2e-5), lat + random.uniform(-2e-5, 2e-5)


class _Staff(HttpUser):
    abstract = True
    username = ""

    def on_start(self) -> None:
        self.case_ids: list[int] = []
        with self.client.post(
            PATHS["token"][1],
            data={"username": self.username, "password": PASSWORD},
            name="sign-in",
            catch_response=True,
        ) as answer:
            if answer.status_code != 200:
                answer.failure(f"sign-in {self.username}: {answer.status_code} {answer.text[:200]}")
                self.stop()
                return
            self.client.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"

    def _tiles(self, layers: tuple[str, ...], tiles: list[list[int]]) -> None:
        """A map view: a 2×2 block of tiles of each layer at one zoom (the browser asks for all at once)."""
        z, x, y = random.choice(tiles)
        for layer in layers:
            for dx in (0, 1):
                for dy in (0, 1):
                    self.client.get(f"/api/v1/tiles/{layer}/{z}/{x + dx}/{y + dy}.mvt", name=f"tile {layer}")

    def _list(self, params: dict, name: str, pages: int = 1) -> None:
        """The first page of a list and, as the pages do, up to `pages` - 1 more by each page's next_cursor."""
        for _ in range(pages):
            with self.client.get("/api/v1/cases", params=params, name=name, catch_response=True) as answer:
                if answer.status_code != 200:
                    return
                body = answer.json()
                self.case_ids = [c["id"] for c in body["items"]][:20] or self.case_ids
                answer.success()
            if not body.get("next_cursor"):
                return
            params = {**params, "cursor": body["next_cursor"]}
            name = name + " (next page)" if not name.endswith("(next page)") else name

    def _open_case(self) -> None:
        if self.case_ids:
            self.client.get(f"/api/v1/cases/{random.choice(self.case_ids)}", name="case detail")


class Dispatcher(_Staff):
    """The district dispatcher's console (调度台): polling dominates, the list is paged and filtered."""

    weight = 3
    wait_time = between(1, 3)
    username = "demo-dispatcher"

    @task(6)
    def poll(self) -> None:
        self.client.get("/api/v1/queues", name="queues")
        self.client.get("/api/v1/notifications", params={"unread": "true"}, name="notifications")

    @task(3)
    def case_list(self) -> None:
        p = plan()
        params: dict = {"limit": 50}
        pick = random.random()
        if pick < 0.3:
            params["queue"] = random.choice(("pending", "dispatched", "verify", "overdue"))
        elif pick < 0.6:
            params["area"] = random.choice(p["subdistricts"])
            params["state"] = "open"
        elif pick < 0.8:
            params["category"] = random.choice(p["categories"])
            params["sort"] = "deadline"
        self._list(params, "cases list", pages=random.choice((1, 1, 1, 2, 3, 11)))

    @task(2)
    def case_detail(self) -> None:
        self._open_case()

    @task(1)
    def map_view(self) -> None:
        self._tiles(("grid", "cases"), plan()["tiles"])


class GridManager(_Staff):
    """A community's grid manager (网格长): their map, their open cases, a locate, notifications."""

    weight = 2
    wait_time = between(2, 6)
    username = "demo-manager"

    @task(3)
    def map_view(self) -> None:
        self._tiles(("microgrid", "cases"), plan()["community_tiles"])

    @task(2)
    def open_cases(self) -> None:
        self._list(
            {"area": plan()["community"], "state": "open", "limit": 50}, "cases list", pages=random.choice((1, 1, 2))
        )

    @task(1)
    def case_detail(self) -> None:
        self._open_case()

    @task(2)
    def locate(self) -> None:
        lon, lat = _point()
        self.client.get("/api/v1/locate", params={"lon": f"{lon:.7f}", "lat": f"{lat:.7f}"}, name="locate")

    @task(2)
    def notifications(self) -> None:
        self.client.get("/api/v1/notifications", name="notifications")


class IntakeClient(HttpUser):
    """Systems that file cases: the hotline integration (native API) and residents' apps (Open311), each locating
    the point first as the apps do."""

    weight = 2
    wait_time = between(1, 4)

    def on_start(self) -> None:
        self.keys = plan()["keys"]

    def _case(self) -> dict:
        lon, lat = _point()
        return {
            "title": f"负载测试上报 {random.randrange(10**6)}",
            "lon": round(lon, 7),
            "lat": round(lat, 7),
            "category": random.choice(plan()["categories"]),
            "description": "load test 压力测试",
        }

    @task(3)
    def locate(self) -> None:
        lon, lat = _point()
        self.client.get(
            "/api/v1/locate",
            params={"lon": f"{lon:.7f}", "lat": f"{lat:.7f}"},
            name="locate",
            headers={"X-API-Key": self.keys["locate"]},
        )

    @task(2)
    def hotline_intake(self) -> None:
        with self.client.post(
            "/api/v1/cases",
            json={**self._case(), "source": "hotline"},
            name="intake api",
            headers={"X-API-Key": self.keys["hotline"]},
            catch_response=True,
        ) as answer:
            _said(answer)

    @task(1)
    def open311_intake(self) -> None:
        case = self._case()
        with self.client.post(
            "/open311/v2/requests.json",
            name="intake open311",
            catch_response=True,
            data={
                "api_key": self.keys["report"],
                "service_code": random.choice(plan()["events"]),
                "lat": case["lat"],
                "long": case["lon"],
                "description": case["description"],
            },
        ) as answer:
            _said(answer)


def _said(answer) -> None:
    """A refused write counted with what the server said (so the failure table tells why, per operation)."""
    if answer.status_code >= 400:
        answer.failure(f"{answer.status_code} {answer.text[:160]}")
    else:
        answer.success()

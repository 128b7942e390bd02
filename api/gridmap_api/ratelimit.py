"""Rate limits, in process: named policies from the settings, each a token bucket per key (a client address, an
API key, an account name). Over the limit a request is refused with `RateLimited`, which `gridmap_api.errors` answers as
429 problem+json (`code: rate_limited`) with `Retry-After` in whole seconds.

A policy reads "N/S": a client may send N requests at once, and the bucket refills at N per S seconds, so N per S
is also the most it can keep up; "off" (or "0") switches the policy off. A refused request takes no token, so a
client that floods still gets through at the refill rate, and nothing more.

Routes attach a policy on their decorator line:

    @router.post("/cases", dependencies=[Depends(rate_limit("anonymous_intake"))])

The key is the client address by default; `rate_limit(policy, key=…)` takes any FastAPI dependency that returns
the key, or None for a request the policy does not apply to (an authenticated caller, say), so a key function can
itself depend on who is acting. Code that is not a dependency (sign-in, which knows the account name only from
the body) calls `check("signin_account", username)`: it uses the limiter of the app serving the current request
(bound by any `rate_limit` dependency of the route, or pass `request=`).

Why a small class of our own and not the `limits` library: a bucket is one float per key under one lock (GCRA),
the clock is injectable (tests run minutes of traffic in no time), the memory is bounded (idle keys are dropped,
and there is a cap), and it needs nothing new installed. It is per process: with several worker processes each
keeps its own budgets, so the effective limit is the setting times the number of processes.
"""

from __future__ import annotations

import functools
import hashlib
import heapq
import ipaddress
import math
import threading
import time
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from fastapi import Depends, FastAPI, Request

POLICIES = ("anonymous_intake", "open311_post", "open311_key", "signin_account", "signin_address")


class RateLimited(Exception):
    """Too many requests under `policy`; the next one is allowed in `retry_after` seconds (whole, at least 1)."""

    def __init__(self, policy: str, retry_after: int) -> None:
        super().__init__(f"rate limit {policy!r}: retry after {retry_after} s")
        self.policy = policy
        self.retry_after = retry_after


@dataclass(frozen=True)
class Rate:
    """A bucket of `burst` requests, refilled at `burst` per `period_s` seconds."""

    burst: int
    period_s: float

    @property
    def interval_s(self) -> float:
        return self.period_s / self.burst


def parse_rate(text: str) -> Rate | None:
    """'300/60' → Rate(300, 60.0); 'off' or '0' → None (no limit). A ValueError names what is accepted."""
    value = text.strip().lower()
    if value in ("off", "0", ""):
        return None
    count, sep, period = value.partition("/")
    try:
        rate = Rate(int(count), float(period.removesuffix("s")))
    except ValueError:
        rate = None
    if not sep or rate is None or not (1 <= rate.burst <= 1_000_000) or not (0 < rate.period_s <= 86_400 * 366):
        raise ValueError(
            f"{text!r} is not a rate; accepted: 'N/S' (N requests, refilled at N per S seconds, "
            "e.g. '300/60'; N 1 to 1,000,000, S up to a year), or 'off'"
        )
    return rate


class RateLimiter:
    """Token buckets per (policy, key), thread safe. Each bucket is stored as the time at which it is full again
    (GCRA's "theoretical arrival time"); a request is allowed when taking a token keeps that within the burst."""

    def __init__(
        self, rates: dict[str, Rate | None], clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000
    ) -> None:
        self.rates = dict(rates)
        self.clock = clock
        self.max_keys = max_keys
        self._full_at: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()
        self._next_sweep = 0.0

    @classmethod
    def from_settings(cls, settings, clock: Callable[[], float] = time.monotonic) -> RateLimiter:
        return cls({name: parse_rate(getattr(settings, f"rate_{name}")) for name in POLICIES}, clock)

    def hit(self, policy: str, key: str) -> int:
        """Take a token from `key`'s bucket under `policy`: 0 when allowed, else the whole seconds to wait."""
        rate = self.rates[policy]  # KeyError for a policy nobody configured: a programming error
        if rate is None:
            return 0
        interval = rate.interval_s
        with self._lock:
            now = self.clock()
            full_at = max(self._full_at.get((policy, key), now), now) + interval
            wait = full_at - now - rate.period_s  # >0: the bucket would hold more than `burst` requests' worth
            if wait > 0:
                return max(1, math.ceil(wait))
            self._full_at[(policy, key)] = full_at
            if len(self._full_at) > self.max_keys or now >= self._next_sweep:
                self._sweep(now)
        return 0

    def reset(self, policy: str, key: str) -> None:
        """Give `key` its full budget again (a sign-in that succeeded, say)."""
        with self._lock:
            self._full_at.pop((policy, key), None)

    def _sweep(self, now: float) -> None:
        """Drop the buckets that are full again (as good as never used); past the cap, also the fullest ones, down
        to 90 % of the cap, so that a flood of new keys sorts the table once per tenth of it, not per request."""
        for k in [k for k, full_at in self._full_at.items() if full_at <= now]:
            del self._full_at[k]
        if len(self._full_at) > self.max_keys:
            excess = len(self._full_at) - self.max_keys * 9 // 10
            for k in heapq.nsmallest(excess, self._full_at, key=self._full_at.__getitem__):
                del self._full_at[k]
        self._next_sweep = now + 60.0

    def __len__(self) -> int:
        return len(self._full_at)


_limiter_lock = threading.Lock()
_bound: ContextVar[RateLimiter | None] = ContextVar("gridmap_rate_limiter", default=None)


def limiter_for(app: FastAPI) -> RateLimiter:
    """The app's limiter, made from its settings on first use (a test may set `app.state.rate_limiter` first)."""
    limiter = getattr(app.state, "rate_limiter", None)
    if limiter is None:
        with _limiter_lock:
            limiter = getattr(app.state, "rate_limiter", None)
            if limiter is None:
                limiter = app.state.rate_limiter = RateLimiter.from_settings(app.state.settings)
    return limiter


def check(policy: str, key: str, *, request: Request | None = None) -> None:
    """Count one request of `key` under `policy` and raise `RateLimited` when it is over the limit. Uses the limiter
    of `request`'s app, else of the app whose `rate_limit` dependency runs for the current request."""
    limiter = limiter_for(request.app) if request is not None else _bound.get()
    if limiter is None:
        raise LookupError(
            "ratelimit.check: no limiter for this request; attach Depends(rate_limit(...)) to the "
            "route or pass request="
        )
    wait = limiter.hit(policy, key)
    if wait:
        raise RateLimited(policy, wait)


def reset(policy: str, key: str, *, request: Request | None = None) -> None:
    """Give `key` its full budget under `policy` again (as `check` finds the limiter)."""
    limiter = limiter_for(request.app) if request is not None else _bound.get()
    if limiter is not None:
        limiter.reset(policy, key)


def _address(text: str) -> str:
    """An address as a budget key: IPv4 as is, IPv6 by its /64 (one subscriber's network), anything else as sent."""
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return text[:64]
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


@functools.lru_cache(maxsize=8)
def trusted_networks(text: str) -> tuple:
    """'10.0.0.1, 192.168.0.0/16' → the networks (a ValueError names a bad item)."""
    nets = []
    for item in text.split(","):
        if item.strip():
            try:
                nets.append(ipaddress.ip_network(item.strip(), strict=False))
            except ValueError:
                raise ValueError(
                    f"{item.strip()!r} is not an address or network; accepted: comma-separated "
                    "addresses or CIDR networks, e.g. '127.0.0.1, 10.0.0.0/8'"
                ) from None
    return tuple(nets)


def _is_in(text: str, nets: Sequence[Any]) -> bool:
    try:
        ip = ipaddress.ip_address(text.strip())
    except ValueError:
        return False
    return any(ip in net for net in nets)


def client_address(request: Request) -> str:
    """The client's address: the peer's (`request.client.host`), unless the peer is a proxy listed in
    `GRIDMAP_TRUSTED_PROXIES`; then X-Forwarded-For is read from the right, past the trusted proxies, and the first
    address that is not one of them is the client. IPv6 addresses count by their /64."""
    peer = request.client.host if request.client else "unknown"
    nets = trusted_networks(request.app.state.settings.trusted_proxies)
    if nets and _is_in(peer, nets):
        hops = [h.strip() for h in ",".join(request.headers.getlist("x-forwarded-for")).split(",") if h.strip()]
        for hop in reversed(hops[-32:]):
            if not _is_in(hop, nets):
                return _address(hop)
            peer = hop
    return _address(peer)


async def address_key(request: Request) -> str:
    """The default key: the client address (async, so that it runs on the event loop without a thread hop)."""
    return client_address(request)


def address_of_anonymous(principal: Callable[..., Any]) -> Callable:
    """A key for a policy on anonymous callers only: the client address when the caller, as the FastAPI dependency
    `principal` resolves it (gridmap_api.auth.get_principal), is anonymous; None for a signed-in user, an integration's
    API key or a trusted gateway's user, whom the policy does not limit."""

    async def key(request: Request, who: Any = Depends(principal)) -> str | None:
        return client_address(request) if getattr(who, "anonymous", True) else None

    return key


async def open311_api_key(request: Request) -> str | None:
    """The Open311 `api_key` of a POST (the form field the route reads, else an X-API-Key header) as a budget key:
    a digest, so that the secret itself is not kept; None without one (the route refuses such a request anyway).
    The body read here is kept by the request for the route."""
    try:
        form = parse_qs((await request.body()).decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        form = {}  # the route answers that the body must be UTF-8
    given = form.get("api_key")
    key = (given[-1] if given else None) or request.headers.get("x-api-key")
    if not key:
        return None
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:32]


def rate_limit(policy: str, key: Callable[..., Any] = address_key) -> Callable:
    """A dependency that counts the request under `policy`, keyed by `key` (a FastAPI dependency returning the key,
    or None when the policy does not apply to this request). Attach with `dependencies=[Depends(rate_limit(…))]`."""
    if policy not in POLICIES:
        raise KeyError(f"no rate-limit policy {policy!r}; known: {', '.join(POLICIES)}")

    async def dependency(request: Request, subject: str | None = Depends(key)) -> None:
        limiter = limiter_for(request.app)
        _bound.set(limiter)  # for check() in the route, which runs in this request's context
        if subject is not None:
            wait = limiter.hit(policy, subject)
            if wait:
                raise RateLimited(policy, wait)

    dependency.__name__ = f"rate_limit_{policy}"
    dependency.policy = policy  # type: ignore[attr-defined]  # a marker read by the policy matrix test
    return dependency

"""The token buckets of gridmap_api.ratelimit on an injected clock: rates as written in the settings, bursts and refill,
whole-second Retry-After, a flood against honest traffic, thread safety, and bounded memory."""

from __future__ import annotations

import threading

import pytest

from gridmap_api.ratelimit import POLICIES, Rate, RateLimiter, check, parse_rate
from gridmap_api.settings import Settings


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def limiter(rate: str, **kw) -> tuple[RateLimiter, Clock]:
    clock = Clock()
    return RateLimiter({"anonymous_intake": parse_rate(rate)}, clock=clock, **kw), clock


def test_rates_as_written_in_the_settings():
    assert parse_rate("300/60") == Rate(300, 60.0)
    assert parse_rate(" 2/0.5s ") == Rate(2, 0.5)
    assert parse_rate("off") is None and parse_rate("0") is None
    for bad in ("300", "x/60", "300/0", "0/60", "-1/60", "300/-5", "1/nan", "5/1e9", "2000000/60"):
        with pytest.raises(ValueError, match="accepted: 'N/S'"):
            parse_rate(bad)
    defaults = RateLimiter.from_settings(Settings())
    assert set(defaults.rates) == set(POLICIES) and all(defaults.rates.values())


def test_a_burst_then_the_refill_rate_and_whole_second_waits():
    lim, clock = limiter("5/60")
    assert [lim.hit("anonymous_intake", "a") for _ in range(5)] == [0] * 5
    assert lim.hit("anonymous_intake", "a") == 12  # a token every 12 s
    clock.now = 11.2
    assert lim.hit("anonymous_intake", "a") == 1  # 0.8 s rounds up: never 0 when refused
    clock.now = 12.0
    assert lim.hit("anonymous_intake", "a") == 0
    assert lim.hit("anonymous_intake", "a") == 12
    assert lim.hit("anonymous_intake", "b") == 0  # another key, another bucket
    clock.now = 1000
    assert [lim.hit("anonymous_intake", "a") for _ in range(6)] == [0] * 5 + [12]  # never more than the burst


def test_refused_requests_take_nothing_and_off_is_off():
    lim, clock = limiter("2/10")
    lim.hit("anonymous_intake", "a"), lim.hit("anonymous_intake", "a")
    for _ in range(1000):
        assert lim.hit("anonymous_intake", "a") > 0
    clock.now = 5.0
    assert lim.hit("anonymous_intake", "a") == 0  # the refill was not eaten by the refused ones
    off = RateLimiter({"anonymous_intake": None})
    assert all(off.hit("anonymous_intake", "a") == 0 for _ in range(10_000))


def test_default_anonymous_limit_stops_a_41_per_second_flood_and_lets_honest_clients_through():
    lim, clock = limiter(Settings().rate_anonymous_intake)
    passed = refused = 0
    first_refused = None
    for tick in range(41 * 120):  # two minutes at 41 a second
        clock.now = tick / 41
        if lim.hit("anonymous_intake", "flood"):
            refused += 1
            first_refused = clock.now if first_refused is None else first_refused
        else:
            passed += 1
    assert first_refused < 10  # within seconds
    assert passed <= 300 + 5 * 120 + 1  # the burst, then 5 a second
    # the durability test's pattern: ~100 submissions at once, 8 threads, retried in a second burst
    assert all(lim.hit("anonymous_intake", "127.0.0.1") == 0 for _ in range(2 * 100))
    # a busy shared address (a whole office behind one NAT): one report every 2 s all day
    busy, clock2 = limiter(Settings().rate_anonymous_intake)
    for tick in range(8 * 3600 // 2):
        clock2.now = tick * 2.0
        assert busy.hit("anonymous_intake", "office") == 0


def test_thread_safe_exactly_the_burst_is_allowed():
    lim, _ = limiter("500/3600")
    allowed = []

    def hammer():
        mine = sum(lim.hit("anonymous_intake", "k") == 0 for _ in range(1000))
        allowed.append(mine)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(allowed) == 500


def test_memory_is_bounded_idle_keys_go_and_a_cap_holds():
    lim, clock = limiter("10/10", max_keys=1000)
    for i in range(5000):
        lim.hit("anonymous_intake", f"k{i}")
    assert len(lim) <= 1000
    clock.now = 100.0  # every bucket is full again: as good as unused
    lim.hit("anonymous_intake", "new")
    assert len(lim) == 1


def test_check_outside_a_request_says_what_to_do():
    with pytest.raises(LookupError, match="rate_limit"):
        check("signin_account", "alice")

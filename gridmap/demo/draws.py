"""Single draws from a numpy `Generator`, the very numbers its own methods give, at a fraction of their cost per call.

The demo makes its cases one at a time (each case's draws depend on the ones before), so it calls the generator for
one number at a time, about 40 times per case. `Generator.integers` and `Generator.uniform` spend most of such a
call checking and converting their arguments (2–3 µs); the arithmetic behind them is a few operations on the bit
generator's output. `Draws` does those operations itself, on the same outputs, in the same order:

* `below(n)` is `rng.integers(n)` (and `rng.integers(0, n)`; k calls are `rng.integers(0, n, size=k)`): Lemire's
  bounded draw on the bit generator's 32-bit output (`next_uint32`, which keeps the unused half of a 64-bit output
  for the next call, as numpy's own calls do), the rejection threshold as numpy computes it;
* `uniform(a, b)` is `a + (b - a) * rng.random()`, numpy's `random_uniform`;
* `normal(m, s)` is `m + s * rng.standard_normal()` and `lognormal(m, s)` its `exp`, numpy's `random_normal` and
  `random_lognormal`.

tests/integration/test_bulk_writes.py holds each to numpy's own answers, draw for draw (a numpy that changed its
algorithms would fail there, not load another demo silently).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

_UINT32 = 0x1_0000_0000


class Draws:
    """The single draws of one generator (see the module). Use from one thread: the bit generator's lock, which
    numpy's own methods take, is not taken here."""

    __slots__ = ("rng", "random", "standard_normal", "_next32", "_state")

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.random = rng.random  # one double: numpy's call is quick already
        self.standard_normal = rng.standard_normal
        interface: Any = rng.bit_generator.ctypes
        self._next32, self._state = interface.next_uint32, interface.state

    def below(self, n: int) -> int:
        """`rng.integers(n)`: an integer in [0, n)."""
        if not 1 < n < 0xFFFF_FFFF:  # no draw (n = 1), numpy's other paths, or its error
            return int(self.rng.integers(n))
        m: int = self._next32(self._state) * n
        if m & 0xFFFF_FFFF < n:
            threshold = (_UINT32 - n) % n
            while m & 0xFFFF_FFFF < threshold:
                m = self._next32(self._state) * n
        return m >> 32

    def integers(self, low: int, high: int) -> int:
        """`rng.integers(low, high)`: an integer in [low, high)."""
        return low + self.below(high - low)

    def uniform(self, low: float, high: float) -> float:
        """`rng.uniform(low, high)`."""
        return low + (high - low) * self.random()

    def normal(self, loc: float, scale: float) -> float:
        """`rng.normal(loc, scale)`."""
        return loc + scale * self.standard_normal()

    def lognormal(self, mean: float, sigma: float) -> float:
        """`rng.lognormal(mean, sigma)`."""
        return math.exp(mean + sigma * self.standard_normal())


_MADE: dict[int, Draws] = {}


def draws(rng: np.random.Generator | Draws) -> Draws:
    """The `Draws` of a generator (made once per generator; a `Draws` is its own)."""
    if isinstance(rng, Draws):
        return rng
    made = _MADE.get(id(rng))
    if made is None or made.rng is not rng:
        if len(_MADE) > 16:
            _MADE.clear()
        made = _MADE[id(rng)] = Draws(rng)
    return made

"""Domain errors; they carry no HTTP. Each message names the bad value and what would be accepted.

`message` is the English text; `zh` the same in Chinese (full-width punctuation, the field named in Chinese).
The API answers in the caller's language (Accept-Language, zh by default); a raise without `zh` gets a Chinese
sentence built from the error kind and the field's Chinese label (api/i18n.py), never English in a zh answer."""

from __future__ import annotations


class GridmapError(Exception):
    """Base class of every error gridmap raises on purpose."""

    def __init__(self, message: str, *, field: str | None = None, zh: str | None = None) -> None:
        super().__init__(message)
        self.message = message  # English
        self.field = field
        self.zh = zh  # Chinese, or None (then the API builds one from the kind and the field)


class InvalidInput(GridmapError):
    """A value supplied by the caller cannot be accepted."""


class InvalidCoordinate(InvalidInput):
    """A coordinate is missing, not finite, out of range or swapped."""


class UnknownCRS(InvalidInput):
    """A coordinate-system name or EPSG code is not one gridmap accepts."""


class NotFound(GridmapError):
    """No object has the given identifier."""


class Conflict(GridmapError):
    """The request contradicts what is stored (duplicate code, stale version, wrong state)."""


class DatabaseNotReady(GridmapError):
    """The database has no schema or no active boundary generation yet."""


class Forbidden(GridmapError):
    """The caller's role may not do this at all (function level); objects out of scope are `NotFound` instead."""


class Unauthenticated(GridmapError):
    """No valid credentials where the operation needs them, or a failed sign-in."""

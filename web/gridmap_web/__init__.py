"""Map pages (folium/Leaflet) and their static assets, all served by the app itself."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

STATIC_DIR = Path(__file__).with_name("static")
STATIC_PREFIX = "/static/"
_versions: dict[tuple[str, int, int], str] = {}
_versions_lock = threading.Lock()


def asset_version(path: str) -> str | None:
    """The version of a static file named by its URL path (`/static/…`): the first 16 hex digits of its content's
    SHA-256, worked out again when the file's size or time changes; None for a file there is not."""
    if not path.startswith(STATIC_PREFIX):
        return None
    file = STATIC_DIR / path[len(STATIC_PREFIX) :]
    try:
        if not file.resolve().is_relative_to(STATIC_DIR.resolve()) or not file.is_file():
            return None
        stat = file.stat()
        key = (str(file), stat.st_size, stat.st_mtime_ns)
        version = _versions.get(key)
        if version is None:
            version = hashlib.sha256(file.read_bytes()).hexdigest()[:16]
    except OSError:
        return None
    if key not in _versions:
        with _versions_lock:
            if len(_versions) > 1024:
                _versions.clear()
            _versions[key] = version
    return version


def asset_url(path: str) -> str:
    """A static file's URL with its version (`/static/common.js?v=…`): a browser may keep it for a year, and a
    changed file has a new URL, so that a page never runs an old script beside a new one after an upgrade."""
    version = asset_version(path)
    return path if version is None else f"{path}?v={version}"

"""Static files named by version (`gridmap_web.asset_version`, `asset_url`)."""

from __future__ import annotations

import hashlib
import os

import gridmap_web


def test_a_file_is_named_by_its_content_and_a_change_names_it_anew(tmp_path, monkeypatch):
    monkeypatch.setattr(gridmap_web, "STATIC_DIR", tmp_path)
    (tmp_path / "sub").mkdir()
    script = tmp_path / "sub" / "a.js"
    script.write_text("one")
    first = gridmap_web.asset_version("/static/sub/a.js")
    assert first == hashlib.sha256(b"one").hexdigest()[:16]
    assert gridmap_web.asset_url("/static/sub/a.js") == f"/static/sub/a.js?v={first}"
    script.write_text("two!")  # another size
    os.utime(script, ns=(1, 1))  # and another time
    assert gridmap_web.asset_version("/static/sub/a.js") == hashlib.sha256(b"two!").hexdigest()[:16]
    (tmp_path.parent / "outside.js").write_text("x")
    for path in ("/static/sub", "/static/nope.js", "/static/../outside.js", "/elsewhere/a.js"):
        assert gridmap_web.asset_version(path) is None, path
        assert gridmap_web.asset_url(path) == path

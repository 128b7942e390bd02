"""A process that opens a SpatiaLite database and then uses pyproj exits cleanly (issue 13: scripts and commands
aborted at exit with status 134/139 when SpatiaLite's PROJ was loaded before pyproj's)."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_spatialite_then_pyproj_exits_cleanly(tmp_path):
    script = textwrap.dedent(f"""
        import sqlalchemy as sa
        from gridmap.store import engine as storage

        engine = storage.make_engine("sqlite:///{tmp_path / "x.db"}")
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT spatialite_version()")).scalar()
        import pyproj

        x, y = pyproj.Transformer.from_crs(4326, 4543, always_xy=True).transform(102.7, 25.0)
        assert 400_000 < x < 600_000
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, (done.returncode, done.stderr[-500:])
    assert done.stdout.strip() == "ok"

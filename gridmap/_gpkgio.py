"""GeoPackage reading and writing in a separate process.

GDAL (inside pyogrio's wheel) crashes the process when it writes a GeoPackage after SpatiaLite has been loaded
into the same process (two SQLite libraries meet; seen as a segmentation fault, every time). gridmap's storage
loads SpatiaLite, so GeoPackage I/O runs in a fresh interpreter that never imports it, and the data crosses as
GeoParquet.

    python -m gridmap._gpkgio read  IN.gpkg  OUT.parquet
    python -m gridmap._gpkgio write IN.parquet OUT.gpkg
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path


def _run(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "gridmap._gpkgio", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise ValueError(f"file: GeoPackage I/O failed: {done.stderr.strip().splitlines()[-1:]}")


def read(path: str | Path):
    import geopandas as gpd

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "data.parquet"
        _run("read", str(path), str(out))
        return gpd.read_parquet(out)


def write(frame, path: str | Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "data.parquet"
        frame.to_parquet(src, index=False)
        _run("write", str(src), str(path))


def main(argv: list[str]) -> int:
    import geopandas as gpd

    action, src, dst = argv
    if action == "read":
        gpd.read_file(src).to_parquet(dst, index=False)
    else:
        gpd.read_parquet(src).to_file(dst, driver="GPKG")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

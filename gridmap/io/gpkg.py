"""GeoPackage and GeoJSON reading and writing in a separate process, with GDAL limited to that one driver.

GDAL (inside pyogrio's wheel) crashes the process when it writes a GeoPackage after SpatiaLite has been loaded
into the same process (two SQLite libraries meet; seen as a segmentation fault, every time). gridmap's storage
loads SpatiaLite, so GeoPackage I/O runs in a fresh interpreter that never imports it, and the data crosses as
GeoParquet.

    python -m gridmap.io.gpkg read  DRIVER IN.gpkg  OUT.parquet
    python -m gridmap.io.gpkg write DRIVER IN.parquet OUT.gpkg

GDAL guesses a file's format from its content, and some formats read other files or the network: a VRT named
`data.gpkg` would copy /etc/passwd into the output. So the interpreter deregisters every driver but the one the
caller names (GPKG or GeoJSON, decided by the caller from the file's content, see `gridmap.locating.batch.sniff`) before
it opens anything, checks that only that one is left, and is given local paths only.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

DRIVERS = ("GPKG", "GeoJSON")


def _run(action: str, driver: str, src: Path, dst: Path, name: str) -> None:
    from gridmap.errors import InvalidInput

    if driver not in DRIVERS:
        raise InvalidInput(
            f"file: format {driver!r}; accepted: {', '.join(DRIVERS)}",
            field="file",
            zh=f"文件：格式 {driver!r} 不被接受；可选：{'、'.join(DRIVERS)}。",
        )
    done = subprocess.run(
        [sys.executable, "-m", "gridmap.io.gpkg", action, driver, str(src), str(dst)], capture_output=True, text=True
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1][:200]
        raise InvalidInput(
            f"file: {name!r} cannot be {'read' if action == 'read' else 'written'} as {driver} ({last})",
            field="file",
            zh=f"文件：{name!r} 无法按 {driver} 格式{('读取' if action == 'read' else '写入')}。",
        )


def read(path: str | Path, driver: str = "GPKG") -> Any:  # a GeoDataFrame (geopandas has no types)
    import geopandas as gpd

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "data.parquet"
        _run("read", driver, Path(path).resolve(), out, Path(path).name)
        return gpd.read_parquet(out)


def write(frame: Any, path: str | Path, driver: str = "GPKG") -> None:
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "data.parquet"
        frame.to_parquet(src, index=False)
        _run("write", driver, src, Path(path).resolve(), Path(path).name)


def only_driver(driver: str) -> None:
    """Deregister every GDAL vector driver but `driver` (GDAL_SKIP, applied by registering again) and make sure
    that only it is left."""
    import pyogrio
    from pyogrio import _ogr

    others = [name for name in pyogrio.list_drivers() if name != driver]
    pyogrio.set_gdal_config_options(
        {"GDAL_SKIP": ",".join(others), "GDAL_HTTP_TIMEOUT": "1", "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".none"}
    )
    _ogr._register_drivers()
    left = set(pyogrio.list_drivers())
    if left != {driver}:
        raise SystemExit(f"GDAL drivers other than {driver} are still registered: {sorted(left - {driver})}")


def main(argv: list[str]) -> int:
    action, driver, src, dst = argv
    if driver not in DRIVERS:
        raise SystemExit(f"driver {driver!r}; accepted: {', '.join(DRIVERS)}")
    path = src if action == "read" else dst
    if path.lower().startswith("/vsi") or "://" in path or not Path(path).is_absolute():
        raise SystemExit(f"{path[:80]!r}: a local absolute path is required")
    only_driver(driver)
    import geopandas as gpd

    if action == "read":
        gpd.read_file(src, engine="pyogrio").to_parquet(dst, index=False)
    else:
        gpd.read_parquet(src).to_file(dst, driver=driver, engine="pyogrio")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

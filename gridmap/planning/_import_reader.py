"""The reader process of `gridmap.planning.importer`: one boundary file read with one GDAL driver, written as
GeoParquet. It imports as little as it can (it runs once per import) and never imports SpatiaLite.

    python -m gridmap.planning._import_reader DRIVER SRC OUT.parquet OPTIONS-JSON

Every GDAL driver but DRIVER is deregistered before SRC is opened (`gridmap.io.gpkg.only_driver`), SRC must be a
local absolute path, and the process runs under CPU-time and memory limits. A refusal is printed on standard error as
`REFUSED FIELD 中文|English` and the process exits 3.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, NoReturn

DRIVERS = ("GeoJSON", "GPKG", "ESRI Shapefile", "LIBKML")


def _refuse(field: str, zh: str, en: str) -> NoReturn:
    print(f"REFUSED {field} {zh}|{en}", file=sys.stderr)
    raise SystemExit(3)


def main(argv: list[str]) -> int:
    driver, src, dst, raw = argv
    opts = json.loads(raw)
    if driver not in DRIVERS:
        raise SystemExit(f"driver {driver!r}; accepted: {', '.join(DRIVERS)}")
    if src.lower().startswith("/vsi") or "://" in src or not Path(src).is_absolute():
        raise SystemExit(f"{src[:80]!r}: a local absolute path is required")
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_CPU, (int(opts["max_seconds"]), int(opts["max_seconds"]) + 5))
        resource.setrlimit(resource.RLIMIT_AS, (8 * 2**30, 8 * 2**30))
    except (ImportError, ValueError, OSError):
        pass
    from gridmap.io.gpkg import only_driver

    only_driver(driver)
    import pyogrio

    try:
        return _read(pyogrio, src, dst, opts)
    except UnicodeDecodeError as exc:
        _refuse(
            "encoding",
            f"文本或列名无法按 {exc.encoding} 解码：请用 --encoding 指定（如 GBK）；UTF-8 的 Shapefile 列名"
            "超过 10 字节会被截断在汉字中间，请改存为 GeoPackage 或 GBK",
            f"the text or column names cannot be decoded as {exc.encoding}: give encoding (e.g. GBK); a UTF-8 "
            "Shapefile cuts column names at 10 bytes, in the middle of a character: save it as a GeoPackage, or "
            "in GBK",
        )


def _read(pyogrio: Any, src: str, dst: str, opts: dict[str, Any]) -> int:
    layers = [str(name) for name, _ in pyogrio.list_layers(src)]
    if opts.get("layer"):
        if opts["layer"] not in layers:
            _refuse(
                "layer",
                f"没有名为 {opts['layer']!r} 的图层，可用：{', '.join(layers[:30])}",
                f"no layer {opts['layer']!r}; accepted: {', '.join(layers[:30])}",
            )
        chosen = [opts["layer"]]
    elif len(layers) > 1 and not opts.get("all_layers"):
        _refuse(
            "layer",
            f"文件中有多个图层，请用 --layer 指定：{', '.join(layers[:30])}",
            f"the file holds several layers; name one with layer: {', '.join(layers[:30])}",
        )
    else:
        chosen = layers
    total = 0
    for layer in chosen:
        total += max(pyogrio.read_info(src, layer=layer, encoding=opts.get("encoding")).get("features") or 0, 0)
        if total > opts["max_features"]:
            _refuse("file", f"要素超过上限 {opts['max_features']:,}", f"more than {opts['max_features']:,} features")
    frames = []
    for layer in chosen:
        try:
            frame = pyogrio.read_dataframe(src, layer=layer, encoding=opts.get("encoding"))
        except LookupError:
            _refuse("encoding", f"未知编码 {opts.get('encoding')!r}", f"unknown encoding {opts.get('encoding')!r}")

        if len(frame):
            frames.append(frame)
    if not frames:
        _refuse("file", "文件中没有要素", "the file holds no features")
    crs = frames[0].crs
    if len(frames) > 1:
        import geopandas as gpd
        import pandas as pd

        frame = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), geometry=frames[0].geometry.name, crs=crs)
    else:
        frame = frames[0]
    frame.to_parquet(dst, index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Settings of the web application, from GRIDMAP_* environment variables (see .env.example)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gridmap.boundaries.check import DEFAULT_HOUSEHOLD_BAND, parse_household_band
from gridmap.errors import InvalidInput
from gridmap.store.engine import DEFAULT_DATABASE_URL
from gridmap.views.mapdata import MAX_FEATURES_LIMIT

TIANDITU = (
    "https://t{{s}}.tianditu.gov.cn/{layer}_w/wmts?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0&LAYER={layer}"
    "&STYLE=default&TILEMATRIXSET=w&FORMAT=tiles&TILEMATRIX={{z}}&TILEROW={{y}}&TILECOL={{x}}&tk={key}"
)


class Settings(BaseSettings):
    """Everything the app can be configured with; nothing is read at import time."""

    model_config = SettingsConfigDict(env_prefix="GRIDMAP_", env_file=".env", extra="ignore")

    database_url: str = DEFAULT_DATABASE_URL
    tile_url: str | None = None  # e.g. https://tile.openstreetmap.org/{z}/{x}/{y}.png ; none = no base map
    tile_attribution: str = ""
    tile_subdomains: str = "abc"  # what {s} in tile_url stands for
    tile_crs: Literal["wgs84", "gcj02"] = "wgs84"  # GCJ-02 base maps (AMap style) need overlays shifted
    tianditu_key: str = ""  # with no tile_url: Tianditu (天地图) vector map and labels with this key
    poll_s: float = 5.0  # how often the dispatcher console looks for new cases
    # the map pages: a level whose view holds more areas than this is drawn from vector tiles, not GeoJSON
    map_max_geojson: int = Field(3000, ge=1, le=MAX_FEATURES_LIMIT)
    language: Literal["zh", "en"] = "zh"
    max_page_size: int = 500
    near_m: float = 10.0  # locate: other grids this close are reported (near_boundary)
    nearest_m: float = 100.0  # locate: outside every grid, take the nearest grid this close
    service_margin_m: float = 30_000.0  # locate: refuse points farther than this from the service area
    max_batch: int = 10_000  # POST /locate/batch: most records per request
    shared_index: bool = True  # lookup index of published boundaries: one memory-mapped file for all workers
    open311_jurisdiction: str = "530111"  # Open311 jurisdiction_id (optional for clients; when sent, must match)
    open311_api_keys: str = ""  # comma-separated keys allowed to POST Open311 requests; none = POST refused (403)
    escalation_interval_s: float = 60.0  # how often overdue cases are looked for (and escalated once)
    duplicate_distance_m: float = 50.0  # duplicate suggestions: same category within this distance …
    duplicate_window_h: float = 72.0  # … and reported within this many hours of each other
    # rate limits (gridmap_api.ratelimit), per process: "N/S" = N requests at once, refilled at N per S seconds; "off"
    rate_anonymous_intake: str = "300/60"  # case and patrol-report intake without credentials, per client address
    rate_open311_post: str = "600/60"  # Open311 POST requests, per client address
    rate_open311_key: str = "1200/60"  # Open311 POST requests, per API key
    rate_signin_account: str = "10/300"  # sign-in attempts per account name
    rate_signin_address: str = "100/300"  # sign-in attempts per client address
    trusted_proxies: str = ""  # comma-separated proxy addresses/networks whose X-Forwarded-For names the client
    max_body_bytes: int = 25 * 1024 * 1024  # larger request bodies are refused (413) before they are read
    # accounts and sign-in (see gridmap_api.auth)
    anonymous_intake: bool = True  # residents may submit cases without credentials (rate limited)
    gateway_secret: str = ""  # identity headers from a gateway are honoured only with this secret; off
    token_ttl_s: int = 3600  # bearer tokens from POST /api/v1/auth/token
    session_ttl_s: int = 12 * 3600  # the pages' session cookie (one working day)
    cookie_secure: bool = True  # Secure cookie (browsers accept it on http://localhost too)
    # boundary check (gridmap.boundaries.check): households per area allowed by level, "LEVEL=MIN-MAX,…"
    check_household_band: str = DEFAULT_HOUSEHOLD_BAND
    # boundary import (gridmap.planning.importer): largest file, most vertices per feature
    import_max_bytes: int = Field(20 * 1024 * 1024, ge=1)
    import_max_vertices: int = Field(100_000, ge=4)
    # attachments (gridmap.cases.attachments, gridmap.store.media): photos of cases
    media_dir: str | None = None  # files here; none = beside the SpatiaLite file (gridmap.media/), or ./media
    media_s3_bucket: str = ""  # with a bucket, files go to S3-compatible object storage instead of media_dir
    media_s3_endpoint: str = ""  # e.g. http://minio:9000; empty = AWS S3
    media_s3_region: str = ""
    media_s3_access_key: str = ""
    media_s3_secret_key: str = ""
    media_s3_prefix: str = ""  # key prefix inside the bucket, e.g. gridmap/
    media_max_bytes: int = Field(10 * 1024 * 1024, ge=1024)  # largest photo file
    media_max_pixels: int = Field(50_000_000, ge=10_000, le=178_000_000)  # checked from the header, before decoding
    media_max_side: int = Field(4096, ge=320, le=20_000)  # stored photos are shrunk to this many pixels at most
    media_per_case: int = Field(20, ge=1, le=1000)  # most attachments of one case

    @field_validator(
        "rate_anonymous_intake", "rate_open311_post", "rate_open311_key", "rate_signin_account", "rate_signin_address"
    )
    @classmethod
    def _rate(cls, value: str) -> str:
        from gridmap_api.ratelimit import parse_rate

        parse_rate(value)
        return value

    @field_validator("check_household_band")
    @classmethod
    def _household_band(cls, value: str) -> str:
        try:
            parse_household_band(value)
        except InvalidInput as exc:
            raise ValueError(exc.message) from None
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, value: str) -> str:
        from gridmap_api.ratelimit import trusted_networks

        trusted_networks(value)
        return value

    def basemaps(self) -> list[dict]:
        """The base map's tile layers (bottom first): the configured URL, else Tianditu with a key, else none."""
        if self.tile_url:
            return [{"url": self.tile_url, "attribution": self.tile_attribution, "subdomains": self.tile_subdomains}]
        if self.tianditu_key:
            attribution = "天地图 Tianditu"
            return [
                {
                    "url": TIANDITU.format(layer=layer, key=self.tianditu_key),
                    "attribution": attribution,
                    "subdomains": "01234567",
                }
                for layer in ("vec", "cva")
            ]
        return []

    def open311_keys(self) -> set[str]:
        return {k.strip() for k in self.open311_api_keys.split(",") if k.strip()}

    def duplicate_window(self):
        from gridmap.cases.duplicates import Window

        return Window(self.duplicate_distance_m, self.duplicate_window_h)

    def locate_options(self):
        from gridmap.locating.locate import LocateOptions

        return LocateOptions(self.near_m, self.nearest_m, self.service_margin_m)

    def media_limits(self):
        from gridmap.cases.attachments import Limits

        return Limits(self.media_max_bytes, self.media_max_pixels, self.media_max_side, self.media_per_case)

    def media_store(self):
        """Where attachments are stored: the S3-compatible bucket when one is configured, else the directory."""
        from gridmap.store import media as media_store

        if self.media_s3_bucket:
            return media_store.S3Store(
                media_store.S3Config(
                    bucket=self.media_s3_bucket,
                    endpoint_url=self.media_s3_endpoint or None,
                    region=self.media_s3_region or None,
                    access_key=self.media_s3_access_key or None,
                    secret_key=self.media_s3_secret_key or None,
                    prefix=self.media_s3_prefix,
                )
            )
        return media_store.DirectoryStore(self.media_dir or media_store.default_directory(self.database_url))

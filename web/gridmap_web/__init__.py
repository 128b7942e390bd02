"""Map pages (folium/Leaflet) and their static assets, all served by the app itself."""

from pathlib import Path

STATIC_DIR = Path(__file__).with_name("static")

"""Shapes for the browser and GIS clients: map data, GeoJSON, vector tiles, OGC API – Features."""

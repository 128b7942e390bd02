"""Geometry with no database: coordinate systems, the point → area index, exact coverages."""

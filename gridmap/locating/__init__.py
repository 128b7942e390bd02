"""A point or an address text → the responsible grid, one at a time or in files of millions."""

"""The area hierarchy and its generations: queries, codes, divisions, the tiling check, export."""

"""Drafts of boundaries: import, edit, balance, partition, repair, publish, and what a redraw moves."""

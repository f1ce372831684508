"""Bundled recipes: `cgfw recipes` lists them, `cgfw run NAME` runs one."""

"""Pure manifest builders for a sandbox's children: JSON-ready dicts, no I/O, no client imports."""

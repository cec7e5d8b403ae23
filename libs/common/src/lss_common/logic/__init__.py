"""Pure decision helpers shared by services: no I/O, no awaits, no client imports."""

"""Service runtime: start order, signals, graceful shutdown, health and metrics endpoints."""

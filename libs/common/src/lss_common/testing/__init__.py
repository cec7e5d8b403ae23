"""Test helpers shared by every test tree (no fixtures here: see lss_dev.pytest_plugin)."""

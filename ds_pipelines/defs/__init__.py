"""Dagster definitions, a folder per domain (assets, resources, sensors, schedules)."""

"""Example Dagster code location."""

"""Dagster integration for cache_utils (work in progress)."""

"""Persistence: tables, queries and migrations. Knows nothing about wire formats."""

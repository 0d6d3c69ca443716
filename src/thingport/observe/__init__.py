"""Watching a running Thingport: Prometheus metrics, the log format and access lines, the HTTP
front that opens every request's audit attempt (docs/operations.md)."""

"""Thingport: a self-hosted IoT device identity, registry and provisioning service."""

__version__ = "0.1.0"

"""Thingport as a test double of EnOS, OceanConnect and the Living Platform, for your own tests.

``pip install thingport`` registers a pytest plugin (:mod:`thingport.testing.pytest_plugin`) with
the fixtures ``thingport_server``, ``thingport_app`` and ``thingport_device``; outside pytest,
:func:`start_server` runs one in a ``with`` block. docs/testing.md has examples.
"""

from thingport.testing.enos import EnosClient, EnosError
from thingport.testing.server import App, Device, Product, ThingportServer, start_server

__all__ = ["App", "Device", "EnosClient", "EnosError", "Product", "ThingportServer", "start_server"]

"""OceanConnect use cases, one module per concern; ``Services.oceanconnect`` holds one of each.

- ``tokens``: application login, refresh, logout and the check of every call's access token.
- ``registrations``: devices registered through OceanConnect (register, read, modify, delete,
  refresh the key, activation), the binds the MQTT front door completes, and bind expiry.
- ``subscriptions``: which callback URL hears which notifyType.
- ``pushes``: the outbox that turns events into pushes and hands them to the dialect's worker.
- ``views``: how OceanConnect shows a device, shared by registrations and pushes.

The per-app flow control is wire-level (code 1010009), so it lives with the dialect
(``dialects/oceanconnect/throttle.py``).
"""

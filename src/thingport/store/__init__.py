"""Persistence: tables, queries and migrations. Knows nothing about wire formats.

One style for every module, so a reader knows where to look:

- A module that owns tables is a class over them (``AccountStore``, ``DeviceStore``,
  ``OceanConnectStore`` …), built with the keyring when it holds secrets, and serves one service
  or one vendor's family of services: ``living_accounts`` and ``provisioning`` are apart because
  their services are. ``Core`` (``services/context.py``) builds one of each; services reach them
  there.
- A module that owns no table is functions: SQL helpers shared by several stores (``labels``,
  ``search``, ``hashes``) and operations across every store's tables (``rekey``).
- ``db``, ``schema``, ``sqlite_inline`` and ``migrations`` are the infrastructure beneath both.
"""

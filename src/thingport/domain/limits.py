"""What any one request may carry, whichever way it arrives (docs/security.md, "Limits").

The numbers live here, beside the validators, so that every front door reads the same ones: the
dialect kit screens HTTP bodies against them (``dialects/common.py``), and an MQTT request is held
to the same.
"""

from __future__ import annotations

#: Arrays and objects nested deeper than this are refused before decoding. msgspec recurses once
#: per level and fails with RecursionError near Python's limit (~1,000: a 2 KB body); values stored
#: in the database are read back recursively too. No vendor body nests more than 5 levels.
MAX_DEPTH = 32
#: Characters in one string, object keys included; fields with a shorter limit of their own (names,
#: descriptions, identifiers) are checked by the validators.
MAX_STRING = 65_536
#: Items of one array and members of one object.
MAX_ITEMS = 10_000
#: Every integer is a signed 64-bit value: what both databases store and the JSON encoder writes
#: back. Fields with a narrower range (page numbers, timeouts) check their own.
INT64 = (-(2**63), 2**63 - 1)

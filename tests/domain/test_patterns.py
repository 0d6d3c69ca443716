"""Every regular expression in ``src``, held to the two rules of docs/security.md ("Limits").

* A pattern that must match a whole value ends in ``\\Z`` or is used with ``fullmatch``: ``$`` also
  matches before a final newline, which let ``key\\n`` through as a deviceKey.
* A class of digits is ``[0-9]``: ``\\d`` matches every script's digits (``٣``, ``３``).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "thingport"
FUNCTIONS = {"compile", "match", "fullmatch", "search", "sub", "subn", "split", "findall", "finditer"}


def patterns() -> list[tuple[str, str]]:
    """(where, pattern) of each literal pattern passed to a function of ``re``."""
    found = []
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in FUNCTIONS
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "re" and node.args
                    and isinstance(node.args[0], ast.Constant)):
                value = node.args[0].value
                text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
                found.append((f"{path.relative_to(SRC)}:{node.lineno}", text))
    return found


def test_the_scan_finds_the_patterns() -> None:
    where = {w.split(":")[0] for w, _ in patterns()}
    assert {"domain/validate.py", "dialects/common.py", "crypto/oceanconnect.py"} <= where


def test_no_pattern_ends_in_a_dollar() -> None:
    offenders = [(w, p) for w, p in patterns() if re.search(r"(?<!\\)\$\s*\)?\s*$", p)]
    assert not offenders, offenders


def test_no_pattern_takes_other_scripts_digits() -> None:
    offenders = [(w, p) for w, p in patterns() if re.search(r"(?<!\\)\\d", p)]
    assert not offenders, offenders


def test_anchored_patterns_refuse_a_trailing_newline() -> None:
    """The patterns of every module that validates with ``match``, tried on value + newline."""
    from thingport.crypto import oceanconnect
    from thingport.services import provisioning
    from thingport.services.oceanconnect import registrations

    for pattern, value in ((provisioning.TOKEN, "0" * 32), (provisioning.RANDOM, "a" * 32),
                           (provisioning.MAC, "00:11:22:33:44:55"), (registrations._HEX, "abcd"),
                           (oceanconnect._CLIENT_ID, "dev_0_0_2024010100")):
        assert pattern.match(value), pattern
        assert not pattern.match(value + "\n"), pattern

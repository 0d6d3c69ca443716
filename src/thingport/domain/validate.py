"""Validators for identifiers and user-supplied values; each error names the field.

Patterns are matched whole (``fullmatch``: ``$`` would also accept a value ending in a newline)
and spell their classes in ASCII (``[0-9]``: ``\\d`` also matches other scripts' digits);
``tests/domain/test_patterns.py`` holds every pattern in ``src`` to both rules.
"""

from __future__ import annotations

import re
import zoneinfo
from functools import lru_cache
from typing import Any

from thingport.domain import limits
from thingport.domain.errors import InvalidArgument
from thingport.domain.models import I18nText, Page

# v2.1 allows ':' in a deviceKey, v2.4 does not (docs/reference/enos.md §2.8).
DEVICE_KEY_PATTERNS = {
    "v2.1": re.compile(r"[A-Za-z0-9_.:\-]{4,64}"),
    "v2.4": re.compile(r"[A-Za-z0-9_.\-]{4,64}"),
}
_OFFSET = re.compile(r"[+-]([0-9]{2}):([0-9]{2})")
_TAG_KEY = re.compile(r"[A-Za-z0-9_\-/]{1,50}")
#: A device secret given by an import: printable ASCII without spaces, as long as a password may be.
_SECRET = re.compile(r"[!-~]{8,128}")
_ORG_ID = re.compile(r"[A-Za-z0-9_\-]{1,64}")
MAX_TAGS = 100
MAX_TAG_VALUE = 200
MAX_NAME = 64
MAX_DESC = 512
#: The largest page number any paged API takes: every offset it implies fits a 64-bit integer.
MAX_PAGE_NUMBER = 2**31 - 1


def device_key(value: Any, *, version: str = "v2.1", field: str = "deviceKey") -> str:
    pattern = DEVICE_KEY_PATTERNS["v2.4" if version == "v2.4" else "v2.1"]
    if not isinstance(value, str) or not pattern.fullmatch(value):
        allowed = "letters, digits, '-', '_', '.'" + ("" if version == "v2.4" else ", ':'")
        raise InvalidArgument(f"{field}: must be 4-64 characters of {allowed}", field=field)
    return value


def device_secret(value: Any, *, field: str = "secret") -> str:
    """A secret an operator brings for a device (a fleet moved from elsewhere keeps its secrets)."""
    if not isinstance(value, str) or not _SECRET.fullmatch(value):
        raise InvalidArgument(f"{field}: must be 8-128 printable ASCII characters without spaces", field=field)
    return value


def grace(seconds: int, *, field: str = "grace") -> int:
    """A rotation's grace period: 0 (the vendors' behaviour: the old credential ends at once) up to
    :data:`limits.MAX_GRACE_S` (a device key, an application secret, a certificate renewal)."""
    if not 0 <= seconds <= limits.MAX_GRACE_S:
        raise InvalidArgument(f"{field}: must be between 0 and {limits.MAX_GRACE_S} seconds, not {seconds}",
                              field=field)
    return seconds


def org_id(value: Any, *, field: str = "orgId") -> str:
    """An organization id of 1-64 ASCII letters, digits, '-' and '_' (``str.isalnum`` would also
    take other scripts' letters and digits, and the column holds 64 characters)."""
    if not isinstance(value, str) or not _ORG_ID.fullmatch(value):
        raise InvalidArgument(f"{field}: 1-64 letters, digits, '-' and '_' only", field=field)
    return value


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def timezone(value: Any, *, field: str = "timezone") -> str:
    """A fixed offset ``+08:00`` (hours ≤ 14, minutes < 60) or an IANA zone name."""
    if not isinstance(value, str) or not value:
        raise InvalidArgument(f"{field}: is required (an offset like +08:00 or an IANA zone)", field=field)
    m = _OFFSET.fullmatch(value)
    if m:
        hours, minutes = int(m.group(1)), int(m.group(2))
        if hours <= 14 and minutes < 60 and not (hours == 14 and minutes):
            return value
    elif value in _zones():
        return value
    raise InvalidArgument(f"{field}: '{value}' is not a UTC offset (+HH:MM) or an IANA time zone", field=field)


def tags(value: Any, *, field: str = "tags") -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidArgument(f"{field}: must be an object of string to string", field=field)
    if len(value) > MAX_TAGS:
        raise InvalidArgument(f"{field}: at most {MAX_TAGS} tags, got {len(value)}", field=field)
    for k, v in value.items():
        if not isinstance(k, str) or not _TAG_KEY.fullmatch(k):
            raise InvalidArgument(
                f"{field}.{k}: a tag key is 1-50 letters, digits, '_', '-' or '/'", field=f"{field}.{k}"
            )
        if not isinstance(v, str):
            raise InvalidArgument(f"{field}.{k}: a tag value must be a string", field=f"{field}.{k}")
        if len(v) > MAX_TAG_VALUE or v != v.strip():
            raise InvalidArgument(
                f"{field}.{k}: at most {MAX_TAG_VALUE} characters, no leading or trailing spaces",
                field=f"{field}.{k}",
            )
    return dict(value)


def attributes(value: Any, *, field: str = "deviceAttributes") -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidArgument(f"{field}: must be an object", field=field)
    for k in value:
        if not k or len(k) > 64:
            raise InvalidArgument(f"{field}: attribute ids are 1-64 characters", field=field)
    return dict(value)


def text(value: Any, *, field: str, max_len: int = MAX_DESC, required: bool = False) -> str | None:
    if value is None:
        if required:
            raise InvalidArgument(f"{field}: is required", field=field)
        return None
    if not isinstance(value, str):
        raise InvalidArgument(f"{field}: must be a string", field=field)
    if required and not value.strip():
        raise InvalidArgument(f"{field}: must not be empty", field=field)
    if len(value) > max_len:
        raise InvalidArgument(f"{field}: at most {max_len} characters, got {len(value)}", field=field)
    return value


def i18n(value: Any, *, field: str, max_len: int = MAX_NAME) -> I18nText:
    """A StringI18n ``{defaultValue, i18nValue}``; a plain string is taken as the default value."""
    if isinstance(value, str):
        value = {"defaultValue": value}
    if not isinstance(value, dict):
        raise InvalidArgument(f"{field}: must be {{defaultValue, i18nValue}}", field=field)
    default = value.get("defaultValue")
    if not isinstance(default, str) or not default.strip():
        raise InvalidArgument(f"{field}.defaultValue: is required", field=f"{field}.defaultValue")
    if len(default) > max_len:
        raise InvalidArgument(
            f"{field}.defaultValue: at most {max_len} characters", field=f"{field}.defaultValue"
        )
    translations = value.get("i18nValue") or {}
    if not isinstance(translations, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and len(v) <= max_len for k, v in translations.items()
    ):
        raise InvalidArgument(
            f"{field}.i18nValue: must map locales to strings of at most {max_len} characters",
            field=f"{field}.i18nValue",
        )
    return I18nText(default, dict(translations))


def page(number: int | None, size: int | None, max_size: int, *, names: tuple[str, str] = ("pageNo", "pageSize"),
         prefix: str = "") -> Page:
    """A 1-based page: ``number`` from 1 to :data:`MAX_PAGE_NUMBER`, ``size`` from 1 to ``max_size``.

    ``names`` are the fields the errors name, ``prefix`` what a message puts before them (Living's
    ``params.``).
    """
    return Page(_counted(number, names[0], MAX_PAGE_NUMBER, prefix), _counted(size, names[1], max_size, prefix))


def _counted(value: int | None, name: str, top: int, prefix: str) -> int:
    if value is None or not 1 <= value <= top:
        raise InvalidArgument(f"{prefix}{name}: is required and must be from 1 to {top}", field=name)
    return value

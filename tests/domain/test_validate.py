import pytest

from thingport.domain import validate
from thingport.domain.errors import InvalidArgument
from thingport.domain.models import Page


@pytest.mark.parametrize("key", ["abcd", "a" * 64, "dev-1_2.3", "A1b2"])
def test_device_keys_valid_in_every_version(key: str) -> None:
    assert validate.device_key(key, version="v2.1") == key
    assert validate.device_key(key, version="v2.4") == key


def test_colon_only_before_v24() -> None:
    assert validate.device_key("gw:01", version="v2.1") == "gw:01"
    with pytest.raises(InvalidArgument, match="deviceKey"):
        validate.device_key("gw:01", version="v2.4")


@pytest.mark.parametrize("key", ["abc", "a" * 65, "has space", "slash/no", "", None, 1234])
def test_device_keys_invalid(key: object) -> None:
    with pytest.raises(InvalidArgument) as info:
        validate.device_key(key)
    assert info.value.field == "deviceKey"


@pytest.mark.parametrize("tz", ["+08:00", "-05:00", "+00:00", "+14:00", "UTC", "America/Los_Angeles", "Asia/Shanghai"])
def test_timezones_valid(tz: str) -> None:
    assert validate.timezone(tz) == tz


@pytest.mark.parametrize("tz", ["+15:00", "+14:30", "+08:60", "8:00", "Mars/Olympus", "", None, "+0800"])
def test_timezones_invalid(tz: object) -> None:
    with pytest.raises(InvalidArgument) as info:
        validate.timezone(tz)
    assert info.value.field == "timezone"


def test_tags_limits() -> None:
    assert validate.tags({"site/a": "x", "k_1-2": "y"}) == {"site/a": "x", "k_1-2": "y"}
    assert validate.tags(None) == {}
    with pytest.raises(InvalidArgument, match="at most 100"):
        validate.tags({f"k{i}": "v" for i in range(101)})
    with pytest.raises(InvalidArgument, match="tag key"):
        validate.tags({"k" * 51: "v"})
    with pytest.raises(InvalidArgument, match="spaces"):
        validate.tags({"k": "v "})
    with pytest.raises(InvalidArgument, match="spaces"):
        validate.tags({"k": "v" * 201})
    with pytest.raises(InvalidArgument, match="string"):
        validate.tags({"k": 1})
    with pytest.raises(InvalidArgument, match="object"):
        validate.tags(["a"])


def test_i18n_accepts_string_or_struct() -> None:
    assert validate.i18n("Meter", field="deviceName").default == "Meter"
    t = validate.i18n({"defaultValue": "M", "i18nValue": {"zh_CN": "表"}}, field="deviceName")
    assert t.translations == {"zh_CN": "表"}
    assert t.localized("zh_CN") == "表" and t.localized("en_US") == "M"


@pytest.mark.parametrize("bad", [{}, {"defaultValue": ""}, {"defaultValue": "x" * 65}, 3,
                                 {"defaultValue": "a", "i18nValue": {"en_US": 1}}])
def test_i18n_invalid(bad: object) -> None:
    with pytest.raises(InvalidArgument) as info:
        validate.i18n(bad, field="deviceName")
    assert info.value.field is not None and info.value.field.startswith("deviceName")


def test_text_limits() -> None:
    assert validate.text(None, field="d") is None
    with pytest.raises(InvalidArgument, match="is required"):
        validate.text(None, field="d", required=True)
    with pytest.raises(InvalidArgument, match="at most 3"):
        validate.text("abcd", field="d", max_len=3)


# --------------------------------------------------------------------------------------------- issue 11

@pytest.mark.parametrize("ending", ["\n", "\r\n", "\r", " "])
def test_a_trailing_newline_is_not_part_of_a_valid_value(ending: str) -> None:
    """``$`` matches before a final newline: ``key1\\n`` was created as a deviceKey and logged in."""
    for check, value in ((validate.device_key, "key1"), (validate.timezone, "+08:00"), (validate.timezone, "UTC"),
                         (validate.org_id, "o-acme")):
        with pytest.raises(InvalidArgument):
            check(value + ending)
    with pytest.raises(InvalidArgument) as info:
        validate.tags({"site" + ending: "x"})
    assert info.value.field == "tags.site" + ending


@pytest.mark.parametrize("tz", ["+٠٨:٠٠", "+0⁸:00", "+０８:００", "+۰۸:۰۰", "+०८:००"])
def test_offsets_are_ascii_digits(tz: str) -> None:
    """``\\d`` takes any script's digits: a timezone of Arabic-Indic digits was stored."""
    with pytest.raises(InvalidArgument) as info:
        validate.timezone(tz)
    assert info.value.field == "timezone"


@pytest.mark.parametrize("key", ["dev²", "dev١٢", "ｄｅｖ１", "déve"])
def test_device_keys_are_ascii(key: str) -> None:
    with pytest.raises(InvalidArgument):
        validate.device_key(key)


def test_org_ids() -> None:
    assert validate.org_id("o-acme_1") == "o-acme_1" and validate.org_id("a" * 64) == "a" * 64
    for bad in ("", "a" * 65, "o acme", "o-٣", "o-²", "ö", None, 7):
        with pytest.raises(InvalidArgument) as info:
            validate.org_id(bad)
        assert info.value.field == "orgId"


def test_pages() -> None:
    assert validate.page(1, 10, 100) == Page(1, 10)
    assert validate.page(validate.MAX_PAGE_NUMBER, 100, 100).offset < 2**63
    for number, size, field in ((0, 1, "pageNo"), (validate.MAX_PAGE_NUMBER + 1, 1, "pageNo"), (2**63, 1, "pageNo"),
                                (None, 1, "pageNo"), (1, 0, "pageSize"), (1, 101, "pageSize"), (1, None, "pageSize")):
        with pytest.raises(InvalidArgument) as info:
            validate.page(number, size, 100, prefix="params.")
        assert info.value.field == field and info.value.message.startswith(f"params.{field}: ")

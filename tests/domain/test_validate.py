import pytest

from thingport.domain import validate
from thingport.domain.errors import InvalidArgument


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

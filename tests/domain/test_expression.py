import pytest

from thingport.domain.errors import InvalidArgument
from thingport.domain.expression import DEVICE_FIELDS, MAX_NESTING, PRODUCT_FIELDS, BoolOp, Compare, Exists, parse


def test_blank_means_everything() -> None:
    assert parse(None, DEVICE_FIELDS) is None
    assert parse("  ", DEVICE_FIELDS) is None


def test_comparisons_with_both_quote_styles() -> None:
    assert parse("productKey = 'abc'", DEVICE_FIELDS) == Compare("productKey", None, "=", ("abc",))
    assert parse('modelId="X"', DEVICE_FIELDS) == Compare("modelId", None, "=", ("X",))
    assert parse("deviceKey != 'k1'", DEVICE_FIELDS) == Compare("deviceKey", None, "!=", ("k1",))


def test_in_list_and_map_keys() -> None:
    expr = parse("deviceTags.site in ('a', \"b\", 'c d')", DEVICE_FIELDS)
    assert expr == Compare("deviceTags", "site", "in", ("a", "b", "c d"))


def test_exists_and_not_exists() -> None:
    assert parse("exists(deviceAttributes.fw)", DEVICE_FIELDS) == Exists("deviceAttributes", "fw", False)
    assert parse("NOT EXISTS(deviceTags.x)", DEVICE_FIELDS) == Exists("deviceTags", "x", True)


def test_like_on_names_with_locale() -> None:
    assert parse("deviceName like 'meter'", DEVICE_FIELDS) == Compare("deviceName", None, "like", ("meter",))
    assert parse("deviceName.en_US like 'm%'", DEVICE_FIELDS) == Compare("deviceName", "en_US", "like", ("m%",))
    assert parse("deviceName.default like 'm'", DEVICE_FIELDS) == Compare("deviceName", "", "like", ("m",))


def test_and_binds_tighter_than_or_and_parentheses_group() -> None:
    expr = parse("productKey='a' or productKey='b' and status='online'", DEVICE_FIELDS)
    assert isinstance(expr, BoolOp) and expr.op == "or"
    assert isinstance(expr.items[1], BoolOp) and expr.items[1].op == "and"
    grouped = parse("(productKey='a' or productKey='b') and status='online'", DEVICE_FIELDS)
    assert isinstance(grouped, BoolOp) and grouped.op == "and"


def test_escaped_quote_in_value() -> None:
    assert parse(r"deviceTags.k = 'it\'s'", DEVICE_FIELDS) == Compare("deviceTags", "k", "=", ("it's",))


@pytest.mark.parametrize(
    ("src", "says"),
    [
        ("color = 'red'", "unknown field 'color'"),
        ("productKey = ", "ended early"),
        ("productKey ~ 'a'", "unexpected character"),
        ("productKey like 'a'", "'like' applies to names"),
        ("deviceTags = 'a'", "needs a key"),
        ("exists(productKey)", "exists() takes"),
        ("productKey = 'a' productKey = 'b'", "unexpected"),
        ("(productKey = 'a'", "expected ')'"),
        ("not productKey = 'a'", "'not' must be followed by 'exists'"),
        ("productKey.x = 'a'", "no sub-fields"),
        ("productKey in ('a',)", "expected a value"),
    ],
)
def test_errors_name_the_problem(src: str, says: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse(src, DEVICE_FIELDS)
    assert says in info.value.message
    assert info.value.field == "expression"


def test_overlong_expression_refused() -> None:
    with pytest.raises(InvalidArgument, match="at most"):
        parse("productKey = '" + "a" * 5000 + "'", DEVICE_FIELDS)


def test_product_catalogue_differs() -> None:
    assert parse("productTags.a = 'b'", PRODUCT_FIELDS) == Compare("productTags", "a", "=", ("b",))
    with pytest.raises(InvalidArgument):
        parse("status = 'online'", PRODUCT_FIELDS)


def test_parentheses_nest_at_most_32_levels() -> None:
    inner = "productKey = 'p'"
    assert parse("(" * MAX_NESTING + inner + ")" * MAX_NESTING, DEVICE_FIELDS) == Compare("productKey", None, "=",
                                                                                        ("p",))
    for depth in (MAX_NESTING + 1, 1300):  # 1,300 levels fit in 4,096 characters; the parser recursed into them
        with pytest.raises(InvalidArgument, match="nested more than 32 levels") as info:
            parse("(" * depth + inner + ")" * depth, DEVICE_FIELDS)
        assert info.value.field == "expression"
    with pytest.raises(InvalidArgument, match="nested more than 32"):
        parse("(" * 4000, DEVICE_FIELDS)  # never closed


def test_trailing_space_ends_the_expression() -> None:
    assert parse("productKey = 'p'" + " " * 3000, DEVICE_FIELDS) == Compare("productKey", None, "=", ("p",))

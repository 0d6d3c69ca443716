"""The geometry of the console's SVG charts."""

from thingport.dialects.console.charts import columns, rows


def test_columns_stack_from_the_bottom_and_share_one_scale() -> None:
    chart = columns([[(2, "a", "2 a"), (2, "b", "2 b")], [(0, "a", ""), (1, "b", "1 b")], []],
                    width=300, height=100)
    assert chart.top == 4
    first_a, first_b, second_b = chart.bars
    assert (first_a.x, first_a.y, first_a.h, first_a.cls) == (0, 50, 50, "a")
    assert (first_b.y, first_b.h) == (0, 50)
    assert (second_b.x, second_b.y, second_b.h, second_b.title) == (100, 75, 25, "1 b")
    assert columns([[], []]).bars == []  # nothing to draw: no division by zero


def test_rows_can_share_a_scale_across_charts() -> None:
    chart = rows([[(1, "on", ""), (1, "off", "")]], width=200, top=4)
    assert [(b.x, b.w) for b in chart.bars] == [(0, 50), (50, 50)]
    assert rows([[(3, "on", "")]], width=90).bars[0].w == 90

"""builtin.fill and builtin.Words: a designer's line is filled the same however it is made (the tick's
memo, or fill itself), and a line the values do not fit is said as written, never an exception."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from npc.minds import builtin

PIECES = st.sampled_from(
    ["Hello", " ", "{player}", "{name}", "{item}", "{item:>5}", "{player!r}", "{0}", "{", "}", "{nope}", "{item.x}",
     "{player[0]}", "{name:d}", "\n", "!"]
)  # fmt: skip
NAMES = st.one_of(st.none(), st.text(max_size=6), st.sampled_from(["Ana", "Bo", "{player}"]))


@settings(max_examples=300, deadline=None)
@given(st.lists(PIECES, max_size=8), st.integers(1, 40), NAMES, NAMES, st.one_of(st.none(), st.sampled_from(["an apple", "bread"])), st.booleans())  # fmt: skip
def test_a_line_made_once_is_the_line_fill_makes(pieces, limit, player, name, item, gift):
    text = "".join(pieces)
    player, name = player or "", name or ""
    words = builtin.Words()
    values = {"player": player, "item": item, "name": name} if gift else {"player": player, "name": name}
    want = builtin.fill(text, limit, **values)  # never raises, whatever the placeholders and specs
    assert words.line(text, limit, player, name, item, gift) == want
    assert words.line(text, limit, player, name, item, gift) == want  # the second time, from the memo
    assert len(words) == 1 and "\n" not in want and len(want) <= limit


def test_a_format_spec_a_value_refuses_is_said_as_written():
    # "{item:>5}" with no item: format(None, ">5") is a TypeError, which used to escape fill (and the tick)
    assert builtin.fill("Take this {item:>5}, {player}", 80, player="Ana", item=None) == "Take this {item:>5}, {player}"
    assert builtin.fill("Take this {item:*>7}", 80, item="bread") == "Take this **bread"


def test_the_memo_is_bounded(monkeypatch):
    monkeypatch.setattr(builtin.Words, "MAX_WORDS", 10)
    words = builtin.Words()
    for k in range(25):
        assert words.line("Hi {player}", 40, f"p{k}", "N") == f"Hi p{k}"
    assert len(words) <= 10

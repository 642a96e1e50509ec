"""observe._joined (the Sights' arrays end to end: a view of the look's gathers when the slices are
consecutive) against np.concatenate, over random splits of one array into slices: consecutive, with
gaps, out of order, of other arrays, 1-D and 2-D; and builtin's place-action table against np.isin."""

import numpy as np
from hypothesis import given, settings, strategies as st

from world.intents import ACTIONS

from npc.minds import builtin
from npc.policy.observe import _joined


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 40),
    st.lists(st.integers(0, 12), min_size=1, max_size=6),
    st.sampled_from(["consecutive", "gap", "shuffled", "other"]),
    st.booleans(),
    st.integers(0, 2**31),
)
def test_joined_is_concatenate(n, cuts, how, two_d, seed):
    rng = np.random.default_rng(seed)
    whole = rng.random((n + 20, 2) if two_d else n + 20)
    bounds = np.cumsum([0] + cuts)
    parts = [whole[lo:hi] for lo, hi in zip(bounds[:-1], bounds[1:]) if hi <= len(whole)]
    if not parts:
        return
    if how == "gap" and len(parts) > 1:
        lo, hi = bounds[len(parts) - 1] + 1, bounds[len(parts)] + 1
        parts[-1] = whole[lo:hi]
    elif how == "shuffled":
        parts = [parts[i] for i in rng.permutation(len(parts))]
    elif how == "other":
        parts[-1] = parts[-1].copy()
    got = _joined(parts)
    assert np.array_equal(got, np.concatenate(parts))
    assert not got.flags.writeable
    if how == "consecutive" and all(len(p) for p in parts):  # (the Sights asked are never empty)
        assert np.shares_memory(got, whole)  # a view, no copy


def test_place_action_table_is_isin():
    codes = np.arange(-1, len(ACTIONS), dtype=np.int8)
    assert np.array_equal(builtin._IS_PLACE_ACTION[codes], np.isin(codes, builtin._PLACE_ACTIONS))

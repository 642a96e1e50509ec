"""The entity table's declared columns: what the type checker is told is what a World holds."""

import numpy as np
import pytest

from world.entities import _DECLARED, NPC, EntityTable
from world.sim import World

from support.worldhelp import default_map


def test_every_declared_column_is_made_by_a_world_with_its_dtype():
    w = World(default_map())
    w.spawn(NPC, "ann", "#fff")
    w.set_stats(w.of_kind(NPC)[0][0], {"energy": 50.0})
    table = w._table
    made = {name: getattr(table, name, None) for name in _DECLARED}
    missing = sorted(name for name, arr in made.items() if arr is None)
    assert not missing, f"declared in EntityTable but never created by a World: {missing}"
    for name, arr in made.items():
        assert isinstance(arr, np.ndarray) and arr.dtype == _DECLARED[name], (name, arr)
        assert len(arr) == table.capacity, name


def test_a_column_must_be_declared_with_the_dtype_it_is_made_with():
    table = EntityTable(16)
    with pytest.raises(TypeError, match="'w_speed' is not declared in EntityTable"):
        table.column("w_speed", np.float64)
    with pytest.raises(TypeError, match="'w_phase' is declared int8, not float64"):
        table.column("w_phase", np.float64)
    table.column("w_phase", np.int8, fill=2)
    assert table.w_phase.dtype == np.int8 and (table.w_phase == 2).all()

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


def test_slots_of_many_ids_agree_with_the_dict_through_adds_removes_and_reuse():
    rng = np.random.default_rng(3)
    table = EntityTable(4096, initial_capacity=4)
    live: list[int] = []
    for _ in range(2000):  # grows both the columns and the id array past their first sizes
        if live and rng.random() < 0.4:
            table.remove(live.pop(int(rng.integers(len(live)))))
        else:
            live.append(table.add(NPC, "n", "#fff", 0.0, 0.0)[0])
        probe = np.concatenate([rng.integers(-2, table.next_id + 3, 50), np.asarray(live[-5:], np.int64)])
        want = [table.slot_of.get(int(e), -1) for e in probe]
        assert table.slots(probe, strict=False).tolist() == want
    assert table.slots(live).tolist() == [table.slot_of[e] for e in live]
    gone = next(e for e in range(1, table.next_id) if e not in table.slot_of)
    with pytest.raises(KeyError, match=f"no entity with id {gone}"):
        table.slots([live[0], gone])
    assert table.slots(np.zeros(0, np.int64)).tolist() == []

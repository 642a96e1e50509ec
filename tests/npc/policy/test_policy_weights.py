"""The policy weights header reader (npc/policy/weights.py): real safetensors files, broken ones."""

import numpy as np
from safetensors.numpy import save_file

from npc.policy.weights import FIRST_LAYER, weights_input


def test_the_input_width_is_the_first_layers_second_dimension(tmp_path):
    path = tmp_path / "policy.safetensors"
    save_file({FIRST_LAYER: np.zeros((16, 37), np.float32), "body.0.bias": np.zeros(16, np.float32)}, str(path))
    assert weights_input(str(path)) == 37


def test_a_file_that_cannot_tell_says_none(tmp_path):
    no_layer = tmp_path / "other.safetensors"
    save_file({"head.weight": np.zeros((4, 8), np.float32)}, str(no_layer))
    flat = tmp_path / "flat.safetensors"
    save_file({FIRST_LAYER: np.zeros(8, np.float32)}, str(flat))
    huge = tmp_path / "huge.safetensors"
    huge.write_bytes((2**62).to_bytes(8, "little") + b"{}")  # a header length no file has
    text = tmp_path / "notes.safetensors"
    text.write_text("these are not weights\n")
    for p in (no_layer, flat, huge, text, tmp_path / "missing.safetensors", tmp_path):
        assert weights_input(str(p)) is None, p

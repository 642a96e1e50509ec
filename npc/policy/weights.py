"""A policy weights file (safetensors), read without torch: what the server and `npcworld check`
need to know before any worker loads it.

The first layer of the model (npc/policy/model.py) is `body.0`, a Linear whose weight is
(hidden, obs_dim): its second dimension is the observation width the weights were trained for,
compared with today's layout (npc/policy/observe.py OBS_DIM) to tell stale weights.
"""

from __future__ import annotations

from pathlib import Path

from safetensors import SafetensorError, safe_open

FIRST_LAYER = "body.0.weight"
DEFAULT_WEIGHTS = Path(__file__).resolve().parents[2] / "assets" / "policy" / "policy.safetensors"


def weights_input(path: str) -> int | None:
    """The input width of a policy's first layer, from the file's header; None when the file is
    missing, unreadable, not safetensors, or has no 2-D `body.0.weight`."""
    try:
        with safe_open(path, framework="numpy") as f:
            shape = f.get_slice(FIRST_LAYER).get_shape()
    except (OSError, SafetensorError):
        return None
    return int(shape[1]) if len(shape) == 2 else None

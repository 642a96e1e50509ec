"""Policy modules for the decision tests, loaded by the server's inference workers by spec
("tests.support.policy_modules:go_to_need"): any nn.Module with the policy's interface plugs in."""

from __future__ import annotations

import torch
import torch.nn as nn

from npc.policy.observe import ACTION_INDEX, NEED0


class Prefer(nn.Module):
    """Always prefers one action and one target slot (among those the masks allow)."""

    def __init__(self, action: str, target: int):
        super().__init__()
        self.action, self.target = ACTION_INDEX[action], target

    def forward(self, obs, mask, tmask):
        a = torch.zeros(mask.shape)  # (B, A)
        a[:, self.action] = 1.0
        t = torch.zeros(tmask.shape)  # (B, T)
        t[:, self.target] = 1.0
        return a.masked_fill(~mask, float("-inf")), t.masked_fill(~tmask, float("-inf"))


class IgnoresMasks(nn.Module):
    """A careless module: the same answer for every row, masks ignored (the runner must mask)."""

    def forward(self, obs, mask, tmask):
        a = torch.arange(mask.shape[1], dtype=torch.float32).expand(mask.shape).clone()  # (B, A) last wins
        t = torch.arange(tmask.shape[1], dtype=torch.float32).expand(tmask.shape).clone()
        return a, t


def go_to_need(weights=None, device="cpu"):
    """go_to the place of the NPC's first need, whatever the built-in behaviour thinks."""
    return Prefer("go_to", NEED0)


def ignores_masks(weights=None, device="cpu"):
    return IgnoresMasks()


def wander(weights=None, device="cpu"):
    """Always wander: a policy that fits any observation layout (for the fault tests)."""
    return Prefer("wander", 0)


class Slow(nn.Module):
    """Answers like Prefer, but only after `seconds`: always past a one-tick deadline."""

    def __init__(self, seconds: float):
        super().__init__()
        self.seconds, self.inner = seconds, Prefer("go_to", NEED0)

    def forward(self, obs, mask, tmask):
        import time

        time.sleep(self.seconds)
        return self.inner(obs, mask, tmask)


def slow(weights=None, device="cpu"):
    return Slow(0.3)

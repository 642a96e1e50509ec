"""Designer hooks: the API a hook sees (context.py) and the guard that runs hooks contained (guard.py)."""

from .context import Context, Event
from .guard import (
    CAP_FACTOR,
    HOOKS,
    MAX_OVERRUNS,
    OVERRUN_WINDOW,
    Guard,
    HookTimeout,
    NotAllowed,
    Report,
    capping,
    check_source,
    hard_cap,
    install,
)

__all__ = [
    "Context",
    "Event",
    "Guard",
    "Report",
    "HookTimeout",
    "NotAllowed",
    "check_source",
    "install",
    "hard_cap",
    "capping",
    "CAP_FACTOR",
    "HOOKS",
    "MAX_OVERRUNS",
    "OVERRUN_WINDOW",
]

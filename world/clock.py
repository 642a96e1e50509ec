"""The game clock: game time of day from the world's elapsed (simulated) seconds.

Pure arithmetic, no wall clock: the world adds each step's dt to its elapsed
seconds, and game time follows from that, so stepping the world is the only
way to advance it (tests step; the server steps once per tick).

Units: `day_length_s` real (simulated) seconds per game day; game time in
minutes since midnight, [0, 1440). With the default day of 1440 s (24 real
minutes), one game minute lasts one real second and one game hour one real
minute.
"""

from __future__ import annotations

from dataclasses import dataclass

MINUTES_PER_DAY = 1440


@dataclass(frozen=True, slots=True)
class GameTime:
    day: int        # whole game days since the world started, from 0
    minute: float   # minutes since midnight, 0 <= minute < 1440

    @property
    def hour(self) -> int:
        return int(self.minute // 60)

    @property
    def clock(self) -> str:
        """'HH:MM', as designers write schedule times."""
        m = int(self.minute)
        return f"{m // 60:02d}:{m % 60:02d}"


def game_time(elapsed_s: float, day_length_s: float, start_minute: float) -> GameTime:
    """The game time `elapsed_s` simulated seconds after a start at `start_minute` of day 0."""
    total = start_minute + elapsed_s * MINUTES_PER_DAY / day_length_s
    day, minute = divmod(total, MINUTES_PER_DAY)
    return GameTime(int(day), float(minute))


def game_hours(dt_s: float, day_length_s: float) -> float:
    """Game hours that pass in dt_s simulated seconds."""
    return dt_s * 24.0 / day_length_s


def parse_clock(text: str) -> int:
    """Minutes since midnight of 'HH:MM' (00:00 .. 24:00); ValueError saying why not."""
    if not isinstance(text, str):
        raise ValueError(f"a time must be a string \"HH:MM\", got {type(text).__name__}")
    parts = text.strip().split(":")
    if len(parts) != 2 or not all(p.isdigit() and len(p) == 2 for p in parts):
        raise ValueError(f"{text!r} is not a time \"HH:MM\" (24-hour, two digits each)")
    h, m = int(parts[0]), int(parts[1])
    if m > 59 or h > 24 or (h == 24 and m != 0):
        raise ValueError(f"{text!r} is not a time of day (00:00 .. 24:00)")
    return h * 60 + m

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

import math
from dataclasses import dataclass

MINUTES_PER_DAY = 1440


@dataclass(frozen=True, slots=True)
class GameTime:
    day: int  # whole game days since the world started, from 0
    minute: float  # minutes since midnight, 0 <= minute < 1440

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
        raise ValueError(f'a time must be a string "HH:MM", got {type(text).__name__}')
    parts = text.strip().split(":")
    if len(parts) != 2 or not all(p.isdigit() and len(p) == 2 for p in parts):
        raise ValueError(f'{text!r} is not a time "HH:MM" (24-hour, two digits each)')
    h, m = int(parts[0]), int(parts[1])
    if m > 59 or h > 24 or (h == 24 and m != 0):
        raise ValueError(f"{text!r} is not a time of day (00:00 .. 24:00)")
    return h * 60 + m


# Bounds of the clock's speed (game minutes per simulated second). 120: a game day in 12 s, to check
# a schedule quickly; needs change per game hour, so at 120 a need of rate -5 falls 10 points a second.
MIN_SPEED = 0.1
MAX_SPEED = 120.0


class Clock:
    """The game clock a world keeps, which an admin may pause, set and speed up.

    Invariant: game minutes (since midnight of day 0) = `anchor_minute` +
    (time_s - `anchor_s`) x `speed`, or `anchor_minute` while paused. Every
    change re-anchors at the time_s it is made at, so game time never jumps
    except when set. Units: `speed` game minutes per simulated second (1440 /
    day_length_s by default: 1.0 for the default day), time_s simulated seconds.
    """

    __slots__ = ("anchor_s", "anchor_minute", "speed", "paused")

    def __init__(self, day_length_s: float, start_minute: float):
        self.anchor_s = 0.0
        self.anchor_minute = float(start_minute)
        self.speed = MINUTES_PER_DAY / day_length_s
        self.paused = False

    def minutes(self, time_s: float) -> float:
        """Game minutes since midnight of day 0 at simulated second time_s."""
        if self.paused:
            return self.anchor_minute
        return self.anchor_minute + (time_s - self.anchor_s) * self.speed

    def at(self, time_s: float) -> GameTime:
        day, minute = divmod(self.minutes(time_s), MINUTES_PER_DAY)
        return GameTime(int(day), float(minute))

    def hours(self, dt_s: float) -> float:
        """Game hours that pass in dt_s simulated seconds now (0 while paused)."""
        return 0.0 if self.paused else dt_s * self.speed / 60.0

    def _anchor(self, time_s: float) -> None:
        self.anchor_minute, self.anchor_s = self.minutes(time_s), time_s

    def set(
        self,
        time_s: float,
        *,
        paused: bool | None = None,
        minute: float | None = None,
        day: int | None = None,
        speed: float | None = None,
    ) -> None:
        """Change the clock at simulated second time_s; ValueError (nothing changed) when a value is out of range."""
        if minute is not None and not (math.isfinite(minute) and 0 <= minute < MINUTES_PER_DAY):
            raise ValueError(f"minute of day must be 0..{MINUTES_PER_DAY - 1}, got {minute}")
        if day is not None and not 0 <= day <= 1_000_000:
            raise ValueError(f"day must be 0..1000000, got {day}")
        if speed is not None and not (math.isfinite(speed) and MIN_SPEED <= speed <= MAX_SPEED):
            raise ValueError(f"speed must be {MIN_SPEED:g}..{MAX_SPEED:g} game minutes per second, got {speed}")
        self._anchor(time_s)
        if minute is not None or day is not None:
            old_day, old_minute = divmod(self.anchor_minute, MINUTES_PER_DAY)
            self.anchor_minute = (old_day if day is None else day) * MINUTES_PER_DAY + (
                old_minute if minute is None else minute
            )
        if speed is not None:
            self.speed = float(speed)
        if paused is not None:
            self.paused = bool(paused)

"""GET /clock and POST /clock: the game clock, as an admin reads and changes it (pure: world in, dict out).

    {"paused": bool?, "time": "HH:MM"? | "minute_of_day": int?, "day": int?, "speed": float?}

Every field is optional; all are checked before any is applied (a bad one
changes nothing: ValueError). `speed` is game minutes per real second
(world/clock.py: MIN_SPEED..MAX_SPEED, 0.1..120; 1 is the default day of 24
real minutes). Needs change per game hour, so they follow the clock: a paused
clock freezes them, a fast one speeds them up. Movement, hooks' `now_s` and
conversations keep real time.
"""

from __future__ import annotations

from world.clock import MAX_SPEED, MIN_SPEED, MINUTES_PER_DAY, parse_clock

FIELDS = ("paused", "time", "minute_of_day", "day", "speed")
USAGE = (
    'expected {"paused": true|false, "time": "HH:MM" or "minute_of_day": 0..1439, "day": 0.., '
    f'"speed": {MIN_SPEED:g}..{MAX_SPEED:g} (game minutes per second)}}, every field optional'
)


def state(world) -> dict:
    c, gt = world.clock, world.game_time
    return {
        "day": gt.day,
        "time": gt.clock,
        "minute_of_day": round(gt.minute, 2),
        "paused": c.paused,
        "speed": c.speed,
        "speed_range": [MIN_SPEED, MAX_SPEED],
        "day_length_s": round(MINUTES_PER_DAY / c.speed, 1),
        "tick": world.tick,
    }


def change(world, body: object) -> dict:
    """Apply a POST /clock body; the clock's new state. ValueError (nothing changed) saying what is wrong."""
    if not isinstance(body, dict) or set(body) - set(FIELDS):
        extra = sorted(set(body) - set(FIELDS)) if isinstance(body, dict) else None
        raise ValueError((f"unknown field(s) {', '.join(extra)}; " if extra else "") + USAGE)
    if "time" in body and "minute_of_day" in body:
        raise ValueError('give "time" or "minute_of_day", not both')
    paused = body.get("paused")
    if paused is not None and not isinstance(paused, bool):
        raise ValueError(f"paused must be true or false, got {paused!r}")
    minute = None
    if "time" in body:
        minute = parse_clock(body["time"])
        if minute == MINUTES_PER_DAY:
            minute = 0
    elif "minute_of_day" in body:
        minute = body["minute_of_day"]
        if isinstance(minute, bool) or not isinstance(minute, (int, float)):
            raise ValueError(f"minute_of_day must be a number 0..{MINUTES_PER_DAY - 1}, got {minute!r}")
    day = body.get("day")
    if day is not None and (isinstance(day, bool) or not isinstance(day, int)):
        raise ValueError(f"day must be a whole number >= 0, got {day!r}")
    speed = body.get("speed")
    if speed is not None and (isinstance(speed, bool) or not isinstance(speed, (int, float))):
        raise ValueError(f"speed must be a number {MIN_SPEED:g}..{MAX_SPEED:g}, got {speed!r}")
    world.clock.set(world.time_s, paused=paused, minute=minute, day=day, speed=speed)
    return state(world)

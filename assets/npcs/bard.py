"""Lyra's hooks: songs, places, and an ear for anyone who asks for music.

Each hook gets `npc` (see docs/designers.md, "Hooks" and "The npc object"): read what she
perceives, then call at most one action method. Doing nothing lets her
built-in behaviour (from bard.toml) decide.
"""

SONGS = [
    "The Ballad of the Iron Mine",
    "Three Crows on the Chapel Roof",
    "The Miller's Lost Daughter",
    "A Toast to the Tavern Keeper",
]
STAGES = ["plaza", "garden", "well", "market"]


def on_spawn(npc):
    npc.memory.setdefault("songs_sung", 0)
    npc.memory.setdefault("stage", npc.random.choice(STAGES))


def on_decide(npc):
    # Evenings belong to the tavern.
    if 19 <= npc.time.hour < 23:
        npc.go_to("tavern", activity="performing")
        return
    # Late at night she sleeps wherever she is.
    if npc.time.hour >= 23 or npc.time.hour < 7:
        npc.idle(activity="sleeping")
        return
    # By day: walk to her stage; once there, play a song now and then,
    # and move to another stage after a few songs.
    if npc.place != npc.memory["stage"]:
        npc.go_to(npc.memory["stage"], activity="walking to her stage")
        return
    if npc.random.random() < 0.1:
        song = SONGS[npc.memory["songs_sung"] % len(SONGS)]
        npc.memory["songs_sung"] += 1
        if npc.memory["songs_sung"] % 3 == 0:
            npc.memory["stage"] = npc.random.choice([s for s in STAGES if s != npc.place])
        npc.talk(f"*plays {song}*")
        return
    npc.idle(activity="singing")


def on_hear(npc, speaker, text):
    # A player's line said to her (npc.spoken_to: her answer replaces the dialogue model's) or near her.
    if speaker.kind != "player":
        return  # never answer other NPCs: two bards would sing forever
    words = text.lower()
    if "song" in words or "sing" in words or "play" in words:
        song = npc.random.choice(SONGS)
        npc.talk(f"You want a song, {speaker.name}? Here's {song}!", to=speaker)


def on_event(npc, event):
    # A new listener: walk up to them (the greeting comes from bard.toml's persona).
    if event.kind == "noticed" and 7 <= npc.time.hour < 19:
        npc.approach(event.who)

"""The actions a conversation may lead to, as options for the model to score.

Every option is built here, from the NPC's allowed actions, as a label (what
the model scores) and the Decision it stands for (what the code applies). The
model only picks an index among these options: nothing it or the player
writes is parsed into a command, so an action the NPC's file does not allow
is never among the options, and cannot be chosen. (Cast._apply checks the
allowed list once more before the world sees an intent.)

"No action" (NOTHING, the first option) is the default: another option is
taken only when the model scores it clearly higher (`pick`, MARGIN; GO_MARGIN
for a "Go to" option), so the action step of small talk leaves the NPC as it
is instead of sending it to some place its schedule overrides half a second
later.
"""

from __future__ import annotations

from dataclasses import dataclass

from npc.minds.builtin import Decision

MAX_PLACES = 6  # go_to options (the first places of the map)
MAX_ITEMS = 6  # give_item options (the first items of the file): each option is a row of the scoring batch
NOTHING = "Just keep talking."  # the "no action" option's label
# Calibrated mean log-prob per token (nats: the exchange's score minus the option's prior, runner "prior")
# another option must beat "no action" by. bench/persona.py's labelled actions, SmolLM2-135M: on the tune
# lines 0.5..2.0 all agree on 20/22 (0.5 keeps the most actions); on the eval lines 0.5 agrees on 27/30.
# Uncalibrated, "Go to the market." outscored "no action" after nearly any line (eval: 11/30).
MARGIN = 0.5
# A "Go to the ..." option must beat "no action" by more. s13d, the tune lines' labelled actions (22 per NPC,
# 110 in all; recorded scores, margins swept offline): go_to at 0.5 agreed on 99/110 ("Go to the plaza."
# after "Goodbye!" or small talk naming a place), 1.0 on 104, 2.0 on 106, never (99) on 106 too, with
# follow and give_item at 0.5 (10 of the 11 lines that asked for an action get it at every go_to margin).
# No labelled line asks an NPC to go somewhere, so a go_to that fits is not measured: 2.0 keeps it possible.
GO_MARGIN = 2.0


def pick(scores: list[float], margins: list[float] | None = None) -> int:
    """The option to take: the best-scored one if it beats option 0 ("no action") by its margin
    (`margins[i]`, default MARGIN; Option.margin), else 0."""
    best = max(range(len(scores)), key=lambda i: scores[i])
    margin = margins[best] if margins is not None else MARGIN
    return best if best and scores[best] - scores[0] > margin else 0


@dataclass(frozen=True)
class Option:
    label: str
    decision: Decision | None  # None: carry on as before
    margin: float = MARGIN  # how much better than "no action" it must score to be taken (pick)


def options(defn, player_id: int, player: str, places: list[str], following: bool) -> list[Option]:
    allowed = defn.allowed
    out = [Option(NOTHING, None)]
    if "follow" in allowed:
        out.append(
            Option(
                f"Follow {player}.",
                Decision("follow", target=player_id, activity="following", reason=f"asked by {player}"),
            )
        )
        if following:
            for base in ("idle", "wander"):
                if base in allowed:
                    out.append(
                        Option(f"Stop following {player}.", Decision(base, reason=f"stopped following {player}"))
                    )
                    break
    if "go_to" in allowed:
        for place in places[:MAX_PLACES]:
            out.append(
                Option(f"Go to the {place}.", Decision("go_to", place=place, reason=f"talked with {player}"), GO_MARGIN)
            )
    if "give_item" in allowed:
        # One option per item the NPC has (the file's first MAX_ITEMS): the model scores the one the
        # player asked for; a single rotating item ("Give Ingrid a apple." after "a loaf of bread?")
        # was never chosen (issue 15).
        prm = defn.params["give_item"]
        for item in prm["items"][:MAX_ITEMS]:
            line = prm["line"].replace("{player}", player).replace("{item}", item)
            out.append(
                Option(
                    f"Give {player} {article(item)} {item}.",
                    Decision(
                        "give_item",
                        target=player_id,
                        activity="giving",
                        say=line[:200],
                        reason=f"asked by {player}",
                        item=item,
                    ),
                )
            )
    return out


def article(noun: str) -> str:
    return "an" if noun[:1].lower() in "aeiou" else "a"

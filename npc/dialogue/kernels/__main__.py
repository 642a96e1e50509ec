"""python -m npc.dialogue.kernels: build the kernels (scripts/setup)."""

from . import main

main()

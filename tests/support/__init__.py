"""The tests' shared helpers, one package (tests/ is on sys.path: pyproject's pytest `pythonpath`).

paths           ROOT, the default map, the browser client's folder
servers         `npcworld serve` as a subprocess on a free loopback port (RunningServer, start_server)
maphelp         ASCII maps written as Tiled files
worldhelp       worlds for the pure world tests (the default map, grids)
npchelp         small maps, NPC files, the admin API over HTTP
adminhelp       the admin API from an event loop: a call, polling until the answer says so
storehelp       Gerda and her map, for the restart and checkpoint tests
decisionhelp    the Walker NPC of the decision tests and what they read of it
talkhelp        talking to an NPC through a real server (find, walk to, converse, check the stream)
dialoguehelp    driving a DialogueRunner step by step
botshelp        `npcworld bots` runs as subprocesses
wsclient        a real WebSocket player (Player) that speaks the wire protocol
browserhelp     screenshots of the browser client, read as pixels
chromium        real Chromium: a page at a URL (chromium_page), an Observer player beside it
mqtthelp        a real Mosquitto and real `npcworld worker` processes (and their fixtures)
policy_modules  policy modules loaded by name ("tests.support.policy_modules:go_to_need")
sighthelp       Sights built from States, for the vectorised built-in behaviour
decision_trace  a seeded town decided by the shipped policy, one digest a tick (the same-decisions guard)
reference_builtin  the scalar built-in behaviour, the reference the vectorised one is checked against
typecheck       mypy as a subprocess started early (at collection) and read by tests/test_types.py
costs           each test's wall and CPU time, written as a table (NPCWORLD_TEST_COSTS=file)
"""

"""Charts as plain SVG strings (charts/svg.py): the bots' HTML report and train-policy's loss
curve draw with it. A leaf of the layers: it imports nothing of the project (world, npc, server,
bots), so that npc/ and bots/ may both import it (tests/test_layers.py)."""

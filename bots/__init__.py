"""Headless bots for load tests (`npcworld bots`). They speak only the wire
protocol of docs/protocol.md, exactly as a browser does.

    cli.py        the subcommand's arguments
    plan.py       one run's plan (URL, clients, ramp, duration...), checked
    run.py        the parent: bot processes, progress line, /metrics, the end
    worker.py     one bot process: many bots on one event loop
    bot.py        one bot: its own small RFC 6455 client (asyncio.Protocol), its measurements
    scenarios.py  what a bot does (wander, chatty, idle); how to add one
    scrape.py     the server's /metrics
    stats.py      mergeable histograms and percentiles
    report.py     table, JSON and HTML report; charts/svg.py draws its plots
"""

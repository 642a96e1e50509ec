"""Dialogue: NPCs answer players with a language model, streamed, in persona.

    model.py     which model a worker loads (the default GGUF, a local HF
                 directory or GGUF file, or a tiny random one for tests)
    runner.py    the streaming runner in the inference pool's workers:
                 continuous batching over per-conversation KV caches, tokens
                 streamed as made, and the constrained action choice
    prompt.py    the prompt: persona, state, memory, conversation (bounded)
    text.py      bounding and cleaning player text and model output
    choice.py    the actions a conversation may lead to, as scored options
    service.py   the game's side, called from the tick: conversations,
                 budgets (thinking line, fallback lines), cancellation,
                 the say_* messages, memory

Only runner.py and model.py import torch/transformers, and only in worker
processes.
"""

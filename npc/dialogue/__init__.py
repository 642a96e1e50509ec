"""Dialogue: NPCs answer players with a language model, streamed, in persona.

    model.py     which model a worker loads (the default GGUF, a local HF
                 directory or GGUF file, or a tiny random one for tests)
    runner.py    the streaming runner in the inference pool's workers:
                 continuous batching (who prefills, who decodes), sampling,
                 tokens streamed as made, and the constrained action choice
    lean.py      the lean engine for Llama-family models (the default):
                 fused weights, one static KV slab, int4/int8 decode matmuls on
                 CPU, CUDA graphs on a GPU
    hfengine.py  the transformers engine: the model's own forward and cache
                 objects (kvcache.py), for any causal LM
    prompt.py    the prompt: persona, state, memory, conversation (bounded)
    text.py      bounding and cleaning player text and model output
    choice.py    the actions a conversation may lead to, as scored options
    check.py     the reply checker (breaks, invented names, echoes, parrots)
                 and the scorer that ranks candidates; words.py its
                 ordinary words
    service.py   the game's side, called from the tick: conversations,
                 budgets (thinking line, fallback lines), cancellation,
                 the say_* messages, memory; with conversation.py (state,
                 configuration), acting.py (the action step after a
                 reply), lines.py (the NPC file's own lines), metrics.py

Only the runner, the engines, kvcache.py and model.py import
torch/transformers, and only in worker processes.
"""

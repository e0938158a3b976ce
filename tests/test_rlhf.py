"""The RLHF baseline: reward model, PPO maths pinned to independent computations, PPO on a bandit against the
closed-form optimum of notebook 02, best-of-N against its exact distribution, and the language-model PPO loop."""

import copy
import math

import pytest
import torch
from torch import nn

from precision import assert_close_tol, logprob_tol, sum_tol

from minidpo.data import collate_sft
from minidpo.kl_optimum import kl_constrained_optimum, kl_divergence
from minidpo.logprobs import model_sequence_logprobs
from minidpo.models import tiny_gpt2, tiny_tokenizer
from minidpo.preference import bradley_terry_nll
from minidpo.rlhf import (
    PolicyWithValue,
    PPOConfig,
    RewardModel,
    best_of_n_distribution,
    best_of_n_kl,
    generalized_advantages,
    kl_penalized_rewards,
    ppo_loss,
    reply_logprobs,
    reward_step,
    rollout_batch,
    score_replies,
    train_bandit_ppo,
    train_ppo,
)


def _ragged_mask(lengths, width):
    return (torch.arange(width)[None] < torch.tensor(lengths)[:, None]).float()


def test_gae_matches_its_definition():
    g = torch.Generator().manual_seed(0)
    lengths, width, gamma, lam = [5, 3, 1], 5, 0.9, 0.8
    mask = _ragged_mask(lengths, width)
    rewards, values = torch.randn(3, width, generator=g) * mask, torch.randn(3, width, generator=g) * mask
    adv, ret = generalized_advantages(rewards, values, mask, gamma, lam)
    for i, n in enumerate(lengths):
        v = values[i, :n].tolist() + [0.0]  # V = 0 after the last token
        deltas = [rewards[i, t].item() + gamma * v[t + 1] - v[t] for t in range(n)]
        for t in range(n):
            expected = sum((gamma * lam) ** k * deltas[t + k] for k in range(n - t))
            # float32 recursion over n - t steps of ~3-term deltas, against a double-precision sum
            tol = sum_tol(sum((gamma * lam) ** k * (abs(rewards[i, t + k].item()) + abs(v[t + k + 1]) + abs(v[t + k]))
                              for k in range(n - t)) + abs(v[t]), 3 * (n - t) + 1)
            assert abs(adv[i, t].item() - expected) <= tol
            assert abs(ret[i, t].item() - (expected + v[t])) <= tol
        assert adv[i, n:].abs().sum() == 0


def test_gae_with_lambda_one_is_reward_to_go_minus_value():
    mask = _ragged_mask([4, 2], 4)
    rewards, values = torch.rand(2, 4) * mask, torch.rand(2, 4) * mask
    adv, ret = generalized_advantages(rewards, values, mask, gamma=1.0, lam=1.0)
    to_go = rewards.flip(1).cumsum(1).flip(1) * mask
    tol = sum_tol(rewards.abs().sum(1, keepdim=True) + 2 * values.abs().sum(1, keepdim=True), 3 * 4)
    assert_close_tol(ret, to_go, tol)
    assert_close_tol(adv, (to_go - values) * mask, tol)


def test_kl_penalized_rewards_sum_to_score_minus_kl():
    mask = _ragged_mask([3, 1], 3)
    logps, ref = -torch.rand(2, 3), -torch.rand(2, 3)
    scores = torch.tensor([2.0, -1.0])
    rewards, log_ratio = kl_penalized_rewards(scores, logps * mask, ref * mask, mask, kl_coef=0.3)
    seq_kl = ((logps - ref) * mask).sum(1)
    tol = sum_tol(scores.abs() + (logps.abs() + ref.abs()).sum(1), 2 * 3 + 1)
    assert_close_tol(rewards.sum(1), scores - 0.3 * seq_kl, tol)
    assert rewards[0, 2] == pytest.approx((scores[0] - 0.3 * (logps[0, 2] - ref[0, 2])).item())  # score at the last real token
    assert rewards[1, 1:].abs().sum() == 0
    assert_close_tol(log_ratio.sum(1), seq_kl, tol)


def test_ppo_loss_is_the_policy_gradient_at_ratio_one_and_zero_when_clipped():
    mask = _ragged_mask([3, 2], 3)
    adv = torch.tensor([[1.0, -2.0, 0.5], [0.3, 1.5, 0.0]])
    old = -torch.rand(2, 3)
    zeros = torch.zeros(2, 3)
    logps = old.clone().requires_grad_(True)
    loss, _ = ppo_loss(logps, old, adv, zeros, zeros, zeros, mask, vf_coef=0.0)
    loss.backward()
    expected = -adv * mask / mask.sum()  # grad of -mean(A log pi)
    assert_close_tol(logps.grad, expected, sum_tol(expected.abs(), 3))
    # ratio 1.5 > 1 + eps with A > 0, and ratio 0.5 < 1 - eps with A < 0: the clipped branch wins, no gradient
    logps = (old + torch.tensor([[math.log(1.5), math.log(0.5), 0.0], [0.0, 0.0, 0.0]])).requires_grad_(True)
    loss, stats = ppo_loss(logps, old, adv, zeros, zeros, zeros, mask, cliprange=0.2, vf_coef=0.0)
    loss.backward()
    assert logps.grad[0, 0] == 0 and logps.grad[0, 1] == 0 and logps.grad[0, 2] != 0
    assert stats["policy/clipfrac_avg"] == pytest.approx(2 / 5)


def test_ppo_value_loss_takes_the_larger_of_clipped_and_unclipped():
    mask = torch.ones(1, 2)
    values, old_values, returns = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 0.0]]), torch.tensor([[0.5, 0.3]])
    zeros = torch.zeros(1, 2)
    _, stats = ppo_loss(zeros, zeros, zeros, values, old_values, returns, mask, cliprange_value=0.2, vf_coef=1.0)
    # token 0: unclipped (1 - .5)^2 = .25, clipped (0.2 - .5)^2 = .09 -> .25; token 1: .09 both
    assert stats["loss/value_avg"] == pytest.approx(0.5 * (0.25 + 0.09) / 2)


@pytest.mark.parametrize("kl_coef", [0.25, 1.0])
def test_ppo_on_a_bandit_reaches_the_closed_form_optimum(kl_coef):
    ref = torch.tensor([0.4, 0.3, 0.2, 0.1])
    rewards = torch.tensor([0.0, 0.5, 1.0, -0.5])
    policy, history = train_bandit_ppo(ref, rewards, kl_coef, iterations=300, batch_size=1024, learning_rate=0.02)
    optimum = kl_constrained_optimum(ref, rewards, kl_coef)
    tv = 0.5 * (policy - optimum).abs().sum().item()
    assert tv < 0.025
    # and the test can tell neighbouring solutions apart: the optimum for twice the coefficient is far
    assert 0.5 * (policy - kl_constrained_optimum(ref, rewards, 2 * kl_coef)).abs().sum().item() > 3 * tv
    # the logged KL estimate agrees with the exact KL of the final policy
    last = sum(h["objective/kl"] for h in history[-20:]) / 20
    assert last == pytest.approx(kl_divergence(policy, ref).item(), abs=0.05)


def test_best_of_n_distribution_matches_simulation_and_kl_formula():
    ref = torch.tensor([0.1, 0.2, 0.3, 0.4])
    rewards = torch.tensor([3.0, 1.0, 2.0, 0.0])
    dist = best_of_n_distribution(ref, rewards, 3)
    assert dist.sum().item() == pytest.approx(1.0)
    g = torch.Generator().manual_seed(0)
    draws = torch.multinomial(ref, 3 * 200_000, replacement=True, generator=g).view(-1, 3)
    best = draws.gather(1, rewards[draws].argmax(1, keepdim=True)).squeeze(1)
    assert torch.allclose(torch.bincount(best, minlength=4).float() / len(best), dist, atol=4e-3)
    # with many equally likely, distinct-reward replies the exact KL approaches log n - (n-1)/n from below
    m = 5000
    uniform, distinct = torch.full((m,), 1.0 / m, dtype=torch.float64), torch.randperm(m, generator=g).double()
    for n in (2, 4, 16):
        exact = kl_divergence(best_of_n_distribution(uniform, distinct, n), uniform).item()
        assert exact <= best_of_n_kl(n) + 1e-9
        assert exact == pytest.approx(best_of_n_kl(n), abs=5e-3)
    assert kl_divergence(best_of_n_distribution(ref, rewards, 4), ref).item() < best_of_n_kl(4)  # coarse: strictly below


def _pairs_batch(tok, good="great", bad="awful", n=4):
    seqs = []
    for word in [good] * n + [bad] * n:
        ids = tok(f"the film was {word}")["input_ids"]
        seqs.append({"prompt_ids": ids[:3], "completion_ids": ids[3:]})
    return collate_sft(seqs, tok.pad_token_id)


def test_reward_model_starts_at_log2_and_learns_a_planted_preference():
    tok = tiny_tokenizer(["the film was great", "the film was awful"] * 5)
    rm = RewardModel(tiny_gpt2(vocab_size=len(tok)))
    batch = _pairs_batch(tok)
    loss, metrics = reward_step(rm, batch)
    assert loss.item() == pytest.approx(math.log(2))  # zero head: every reply scores 0
    scores = rm(batch["input_ids"], batch["attention_mask"])
    assert torch.allclose(loss, bradley_terry_nll(*scores.chunk(2)))
    opt = torch.optim.AdamW(rm.parameters(), lr=1e-2)
    for _ in range(20):
        loss, metrics = reward_step(rm, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert metrics["accuracy"] == 1.0 and loss.item() < 0.1
    # the score reads the last real token: right padding does not change it
    rm.eval()
    padded = {k: torch.cat([v, torch.full((len(v), 3), tok.pad_token_id if k == "input_ids" else 0)], 1) for k, v in batch.items()}
    with torch.no_grad():
        expected = rm(batch["input_ids"], batch["attention_mask"])
        # a head over a width-d hidden state: d + sequence-length accumulated roundings of the score's size
        tol = sum_tol(expected.abs() + 1, rm.config.n_embd + padded["input_ids"].shape[1])
        assert_close_tol(rm(padded["input_ids"], padded["attention_mask"]), expected, tol)


def test_reply_logprobs_match_sequence_logprobs_per_row():
    tok = tiny_tokenizer()
    model = tiny_gpt2(vocab_size=len(tok)).eval()
    prompts = [tok("Please answer")["input_ids"], tok("The quick brown fox")["input_ids"]]
    replies = [tok(" politely and briefly")["input_ids"] + [0], tok(" jumps")["input_ids"]]
    batch = rollout_batch(prompts, replies, tok.pad_token_id, "cpu")
    with torch.no_grad():
        logits, values = PolicyWithValue(model)(batch["input_ids"], batch["attention_mask"])
    per_token = reply_logprobs(logits, batch, batch["mask"].shape[1]) * batch["mask"]
    expected = model_sequence_logprobs(model, collate_sft([{"prompt_ids": p, "completion_ids": r} for p, r in zip(prompts, replies)], 0))
    assert_close_tol(per_token.sum(1), expected, logprob_tol(expected, batch["mask"].shape[1], model.config.n_embd))
    assert values.abs().sum() == 0  # zero-initialised value head


class _CountsTokens(nn.Module):
    """A stand-in reward model: how many positions hold a token id below `below` (a reward PPO can raise)."""

    def __init__(self, below):
        super().__init__()
        self.below, self.dummy = below, nn.Parameter(torch.zeros(()))

    def forward(self, input_ids, attention_mask):
        return ((input_ids < self.below) & attention_mask.bool()).float().sum(1) + self.dummy * 0


def _ppo_setup(tmp_path, iterations, **kw):
    tok = tiny_tokenizer()
    sft = tiny_gpt2(vocab_size=len(tok))
    cfg = PPOConfig(output_dir=str(tmp_path), kl_coef=0.01, learning_rate=1e-3, iterations=iterations, rollout_batch_size=16,
                    num_mini_batches=2, ppo_epochs=2, max_new_tokens=6, save_every=1, show_progress=False, **kw)
    return tok, sft, _CountsTokens(len(tok) // 2), cfg, ["Please answer", "The quick", "Thank you", "Write a"] * 4


def test_ppo_raises_the_reward_of_a_language_model(tmp_path):
    tok, sft, reward, cfg, prompts = _ppo_setup(tmp_path, 25)
    policy = PolicyWithValue(tiny_gpt2(vocab_size=len(tok)))
    history = train_ppo(policy, sft, reward, tok, prompts, cfg)
    first, last = (sum(h["objective/scores"] for h in part) / 3 for part in (history[:3], history[-3:]))
    assert last > first + 1.0, (first, last)  # 6 reply tokens: about 3 of them score at the start
    assert all(math.isfinite(h["loss/policy_avg"]) and math.isfinite(h["objective/kl"]) for h in history)
    assert history[-1]["objective/kl"] > 0  # it moved away from the reference to get there


def test_ppo_resume_gives_the_same_run(tmp_path):
    tok, sft, reward, cfg, prompts = _ppo_setup(tmp_path / "a", 3)
    whole = PolicyWithValue(tiny_gpt2(vocab_size=len(tok)))
    h_whole = train_ppo(whole, sft, reward, tok, prompts, cfg)
    _, _, _, cfg_b, _ = _ppo_setup(tmp_path / "b", 2)
    part = PolicyWithValue(tiny_gpt2(vocab_size=len(tok)))
    train_ppo(part, sft, reward, tok, prompts, cfg_b)
    cfg_b.iterations = 3
    resumed = PolicyWithValue(tiny_gpt2(vocab_size=len(tok)))  # a fresh process: weights come from the checkpoint
    h_resumed = train_ppo(resumed, sft, reward, tok, prompts, cfg_b)
    strip = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h]  # noqa: E731
    assert len(h_resumed) == len(h_whole) == 3
    # same machine, same kernels, same order of operations: a resumed run is the uninterrupted run, bit for bit
    assert strip(h_resumed) == strip(h_whole)
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)


def test_score_replies_scores_token_ids_in_batches():
    reward = _CountsTokens(10)
    prompts = [[50, 60]] * 3
    replies = [[1, 2, 99], [99], [3]]
    assert score_replies(reward, prompts, replies, pad=0, batch_size=2).tolist() == [2.0, 0.0, 1.0]


def test_ppo_takes_a_reward_model_or_a_reward_on_texts(tmp_path):
    tok, sft, reward, cfg, prompts = _ppo_setup(tmp_path, 1)
    policy = PolicyWithValue(tiny_gpt2(vocab_size=len(tok)))
    with pytest.raises(ValueError, match="pass a reward"):
        train_ppo(policy, sft, None, tok, prompts, cfg)
    history = train_ppo(policy, sft, lambda p, r: torch.tensor([float(len(x)) for x in r]), tok, prompts, cfg)
    assert history[0]["objective/scores"] > 0  # the text reward was used


def test_ppo_config_rejects_bad_values():
    with pytest.raises(ValueError, match="multiple of num_mini_batches"):
        PPOConfig(rollout_batch_size=10, num_mini_batches=3)
    with pytest.raises(ValueError, match="kl_coef"):
        PPOConfig(kl_coef=-1)


def test_sum_pooled_reward_model_is_a_sum_of_token_scores_and_the_prompt_cancels():
    tok = tiny_tokenizer(["the film was great", "the film was awful"] * 5)
    rm = RewardModel(tiny_gpt2(vocab_size=len(tok)), pooling="sum").eval()
    torch.manual_seed(0)
    nn.init.normal_(rm.head.weight, std=0.5)
    nn.init.normal_(rm.head.bias, std=0.5)
    prompt = tok("the film", add_special_tokens=False)["input_ids"]
    replies = [tok(t, add_special_tokens=False)["input_ids"] for t in (" was great", " was awful and long")]
    batch = collate_sft([{"prompt_ids": prompt, "completion_ids": r} for r in replies], tok.pad_token_id)
    with torch.no_grad():
        scores = rm(batch["input_ids"], batch["attention_mask"])
        hidden = rm.body(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        per_token = rm.head(hidden).squeeze(-1)
    # an independent reading: the head applied to each real token's state, summed in float64
    for i, r in enumerate(replies):
        n = len(prompt) + len(r)
        expected = per_token[i, :n].double().sum()
        assert_close_tol(scores[i].double(), expected, sum_tol(per_token[i, :n].abs().sum() + 1, rm.config.n_embd + n))
        # a causal trunk: the prompt's tokens score the same in both rows, so a pair's difference is the replies' alone
        assert_close_tol(per_token[i, : len(prompt)], per_token[0, : len(prompt)], sum_tol(per_token[0, : len(prompt)].abs() + 1, rm.config.n_embd))
    with pytest.raises(ValueError, match="pooling"):
        RewardModel(tiny_gpt2(vocab_size=len(tok)), pooling="mean")


def test_pair_accuracy_counts_every_ranked_pair_of_a_prompt():
    from minidpo.experiments.frontier_rlhf import pair_accuracy

    true = torch.tensor([[0.5, 0.0, 0.0], [1.0, -1.0, 0.2]])
    scores = torch.tensor([[2.0, 1.0, 3.0], [0.0, 0.0, 1.0]])
    # row 0: (0,1) right, (0,2) wrong, (1,2) tied in truth -> skipped; row 1: (0,1) score tie -> half, (0,2) wrong, (1,2) right
    accuracy, n = pair_accuracy(scores, true)
    assert n == 5 and accuracy == pytest.approx((1 + 0 + 0.5 + 0 + 1) / 5)


def test_ppo_warms_up_its_learning_rate_and_logs_its_stability(tmp_path):
    """Mutations caught: no warm-up (the first iteration at the full rate), a warm-up that never ends, the largest
    ratio averaged instead of maximised, the entropy or approxkl missing from the log."""
    tok, sft, reward, cfg, prompts = _ppo_setup(tmp_path, 3, warmup_steps=6)  # 4 updates per iteration
    policy = PolicyWithValue(tiny_gpt2(vocab_size=len(tok)))
    history = train_ppo(policy, sft, reward, tok, prompts, cfg)
    # the rate of each iteration's last update (steps 3, 7, 11 from 0) under a 6-step warm-up, (step + 1) / 7: the
    # training loop's rule (mutation caught: PPO's own (step + 1) / 6, which reached the full rate a step earlier)
    assert [h["learning_rate"] for h in history] == pytest.approx([1e-3 * 4 / 7, 1e-3, 1e-3])
    for h in history:
        assert h["val/ratio_max"] >= h["val/ratio"] > 0 and h["policy/approxkl_avg"] >= 0
        assert 0 <= h["policy/clipfrac_avg"] <= 1 and h["loss/value_avg"] >= 0
        # a distribution over the vocabulary has entropy between 0 and log |V|
        assert 0 < h["policy/entropy_avg"] <= math.log(len(tok)) + 1e-4
    with pytest.raises(ValueError, match="warmup_steps"):
        PPOConfig(warmup_steps=-1)


def test_ppo_entropy_is_the_policy_entropy_at_the_reply_tokens(tmp_path):
    """At iteration 1 the first update's entropy is the rollout policy's; compare it with an independent reading:
    the entropy of the model's next-token distribution before each sampled reply token (mutation caught: entropy
    read at the prompt's positions, or at padding)."""
    tok, sft, reward, cfg, prompts = _ppo_setup(tmp_path, 1)
    cfg.num_mini_batches, cfg.rollout_batch_size, cfg.ppo_epochs = 1, 4, 1
    policy = PolicyWithValue(tiny_gpt2(vocab_size=len(tok)))
    reference = copy.deepcopy(policy.lm).eval()
    history = train_ppo(policy, sft, reward, tok, prompts[:4], cfg)
    from minidpo.generate import generate_responses
    from minidpo.utils import derive_seed, epoch_seed

    # the same rollout, regenerated: same prompt order (iteration 0, epoch 0) and sampling seed
    order = torch.randperm(4, generator=torch.Generator().manual_seed(epoch_seed(cfg.seed, 0))).tolist()
    batch_prompts = [prompts[i] for i in order]
    _, ids = generate_responses(reference, tok, batch_prompts, max_new_tokens=cfg.max_new_tokens, temperature=1.0,
                                seed=derive_seed(cfg.seed, "ppo/sample", 0), batch_size=4, show_progress=False)
    total, count = 0.0, 0
    for p, reply in zip(batch_prompts, ids):
        prompt = tok(p, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logits = reference(torch.tensor([prompt + reply])).logits[0].double()
        logp = logits[len(prompt) - 1 : len(prompt) - 1 + len(reply)].log_softmax(-1)
        total += float(-(logp.exp() * logp).sum(-1).sum())
        count += len(reply)
    assert history[0]["policy/entropy_avg"] == pytest.approx(total / count, rel=1e-4)


def test_calibration_maps_scores_onto_the_target_scale():
    """Pinned to an independent computation: after the map the scores have the target's mean and standard deviation,
    and the order of every two replies is kept (mutations: the scale inverted, the shift forgotten)."""
    from minidpo.rlhf import CalibratedReward, calibration

    g = torch.Generator().manual_seed(0)
    scores = 3.0 * torch.randn(200, generator=g, dtype=torch.float64) + 7.0
    target = 0.3 * torch.randn(200, generator=g, dtype=torch.float64) + 0.1
    a, b = calibration(scores, target)
    mapped = a * scores + b
    assert mapped.mean().item() == pytest.approx(target.mean().item(), abs=1e-12)
    assert mapped.std().item() == pytest.approx(target.std().item(), rel=1e-12)
    assert a == pytest.approx(target.std().item() / scores.std().item(), rel=1e-12) and a > 0
    with pytest.raises(ValueError, match="same score"):
        calibration(torch.ones(5), torch.randn(5))
    ids = torch.tensor([[1, 2, 9], [7, 8, 9]])
    calibrated = CalibratedReward(_CountsTokens(5), 2.0, -1.0)
    assert calibrated(ids, torch.ones_like(ids)).tolist() == [3.0, -1.0]  # 2 * (2, 0) - 1
    with pytest.raises(ValueError, match="positive"):
        CalibratedReward(_CountsTokens(5), -2.0, 0.0)

"""DPO's wider family (minidpo.losses): each loss against its paper's formula written out here, independently;
gradient directions; reference-free training with no reference anywhere; Plackett-Luce DPO; online DPO."""

import copy
import math

import pytest
import torch
from datasets import Dataset
from precision import EPS64, sum_tol

import minidpo.train as train_module
from minidpo.batching import collate_preferences, collate_rankings
from minidpo.losses import LOSSES, dpo_loss, log1mexp, plackett_luce_loss
from minidpo.online import OnlineDPOStep, train_online_dpo
from minidpo.train import DPOConfig, DPOStep, train_dpo, train_rankings

F64 = torch.float64
FAMILY = ("sigmoid_norm", "rpo", "rdpo", "simpo", "orpo", "kto")


def _batch(seed=0, n=6):
    """Sequence log-probs (policy, reference), reply lengths and mismatched log-ratios of n pairs, float64."""
    g = torch.Generator().manual_seed(seed)
    lc, lr = torch.randint(2, 30, (2, n), generator=g).to(F64)
    pc, pr = -lc * 2 * torch.rand(n, generator=g, dtype=F64), -lr * 2 * torch.rand(n, generator=g, dtype=F64)
    rc, rr = pc + torch.randn(n, generator=g, dtype=F64), pr + torch.randn(n, generator=g, dtype=F64)
    mism = torch.randn(2 * n, generator=g, dtype=F64) + 0.5
    return pc, pr, rc, rr, lc, lr, mism


def _ours(loss_type, pc, pr, rc, rr, lc, lr, mism, beta, **kw):
    return dpo_loss(pc, pr, rc, rr, beta, loss_type, chosen_lengths=lc, rejected_lengths=lr, mismatched_logratios=mism, **kw).losses


def _sig(x):
    return 1 / (1 + math.exp(-x))


def _paper(loss_type, pc, pr, rc, rr, lc, lr, mism, beta, alpha=0.3, gamma=0.4):
    """Each paper's per-pair loss, element by element in plain Python floats."""
    nll = -sum(pc.tolist()) / sum(lc.tolist())
    z = max(0.0, sum(mism.tolist()) / len(mism))
    out = []
    for c, r, c0, r0, nc, nr in zip(*(t.tolist() for t in (pc, pr, rc, rr, lc, lr))):
        h = (c - c0) - (r - r0)
        if loss_type == "sigmoid_norm":
            out.append(-math.log(_sig(beta * ((c - c0) / nc - (r - r0) / nr))))
        elif loss_type == "rpo":  # Pang et al. 2024 eq. 1 with TRL's batch-token-mean NLL
            out.append(-math.log(_sig(beta * h)) + alpha * nll)
        elif loss_type == "rdpo":  # Park et al. 2024 eq. 9: beta h = r_w - r_l - alpha (|y_w| - |y_l|) at the optimum
            out.append(-math.log(_sig(beta * h + alpha * (nc - nr))))
        elif loss_type == "simpo":  # Meng et al. 2024 eq. 6
            out.append(-math.log(_sig(beta / nc * c - beta / nr * r - gamma)))
        elif loss_type == "orpo":  # Hong et al. 2024 eqs. 4, 6, 7: odds(y) = P / (1 - P), P the mean-token likelihood
            pw, pl = math.exp(c / nc), math.exp(r / nr)
            out.append(nll - beta * math.log(_sig(math.log(pw / (1 - pw)) - math.log(pl / (1 - pl)))))
        elif loss_type == "kto":  # Ethayarajh et al. 2024 eq. 7, lambda_D = lambda_U = 1, mean over both examples
            out.append(((1 - _sig(beta * ((c - c0) - z))) + (1 - _sig(beta * (z - (r - r0))))) / 2)
    return torch.tensor(out, dtype=F64)


@pytest.mark.parametrize("loss_type", FAMILY)
@pytest.mark.parametrize("beta", [0.1, 1.0])
def test_each_loss_is_its_papers_formula(loss_type, beta):
    b = _batch(1)
    kw = {"rpo": dict(rpo_alpha=0.3), "rdpo": dict(rdpo_alpha=0.3), "simpo": dict(simpo_gamma=0.4)}.get(loss_type, {})
    ours, paper = _ours(loss_type, *b, beta, **kw), _paper(loss_type, *b, beta)
    # float64 roundings of a handful of terms, each below 1e3 in size
    assert torch.allclose(ours, paper, rtol=0, atol=sum_tol(1e3, 16, EPS64))


def test_spec_flags_say_what_each_loss_needs():
    assert {k for k in FAMILY if not LOSSES[k].needs_reference} == {"simpo", "orpo"}
    assert {k for k in FAMILY if LOSSES[k].needs_mismatched} == {"kto"}
    assert all(LOSSES[k].uses_lengths for k in FAMILY if k != "kto")


@pytest.mark.parametrize("loss_type", FAMILY)
def test_gradient_raises_chosen_and_lowers_rejected(loss_type):
    """Gradient descent moves log pi(y_w|x) up and log pi(y_l|x) down, for every pair, in every loss."""
    pc, pr, rc, rr, lc, lr, mism = _batch(2)
    x = torch.cat([pc, pr]).requires_grad_(True)
    _ours(loss_type, x[:6], x[6:], rc, rr, lc, lr, mism, 0.5).sum().backward()
    assert (x.grad[:6] < 0).all() and (x.grad[6:] > 0).all()


def test_length_terms_do_what_their_papers_say():
    pc, pr, rc, rr, lc, lr, mism = _batch(3)
    # R-DPO: when the chosen reply is the longer one, length explains part of the preference, so the same margin
    # already costs less (and the policy is pushed less to lengthen it); alpha = 0 is DPO
    longer = _ours("rdpo", pc, pr, rc, rr, lc + 5, lr, mism, 0.5)
    assert (longer < _ours("rdpo", pc, pr, rc, rr, lc, lr, mism, 0.5)).all()
    assert torch.allclose(_ours("rdpo", pc, pr, rc, rr, lc, lr, mism, 0.5, rdpo_alpha=0.0), dpo_loss(pc, pr, rc, rr, 0.5).losses)
    # sigmoid_norm and SimPO: doubling a reply (its length and its log-prob sum) changes nothing
    for loss_type in ("sigmoid_norm", "simpo"):
        a = _ours(loss_type, pc, pr, rc, rr, lc, lr, mism, 0.5)
        assert torch.allclose(a, _ours(loss_type, 2 * pc, pr, 2 * rc, rr, 2 * lc, lr, mism, 0.5))
    # SimPO needs the margin gamma: at equal average log-probs the loss is -log sigma(-gamma)
    same = _ours("simpo", lc * -1.0, lr * -1.0, None, None, lc, lr, None, 2.0, simpo_gamma=0.7)
    assert torch.allclose(same, torch.full_like(same, -math.log(_sig(-0.7))))


@pytest.mark.parametrize("loss_type", ["simpo", "orpo"])
def test_reference_free_rewards_are_beta_times_the_length_averaged_logprob(loss_type):
    # chosen -20 over 20 tokens (-1 per token) against rejected -10 over 5 (-2 per token): the length-averaged
    # log-prob these losses compare prefers the chosen reply; logging beta x the summed log-prob (the mutation this
    # catches) would count the pair as ranked wrong in rewards/accuracies
    from minidpo.losses import dpo_loss, dpo_metrics

    pc, pr = torch.tensor([-20.0], dtype=F64), torch.tensor([-10.0], dtype=F64)
    lc, lr = torch.tensor([20.0], dtype=F64), torch.tensor([5.0], dtype=F64)
    out = dpo_loss(pc, pr, None, None, 2.0, loss_type, chosen_lengths=lc, rejected_lengths=lr)
    assert out.chosen_rewards.item() == -2.0 and out.rejected_rewards.item() == -4.0
    assert dpo_metrics(out, pc, pr)["rewards/accuracies"] == 1.0


def test_kto_never_sees_a_batch_of_one_pair():
    # 9 pairs in batches of 4 leave a last batch of one: merged into the batch before it (min_batch=2), so the
    # mismatched-pair estimate z always has another prompt's reply; without the merge (the mutation) a batch of 1
    from minidpo.batching import length_grouped_batches

    for seed in range(5):
        batches = length_grouped_batches([3] * 9, 4, seed=seed, min_batch=2)
        assert sorted(map(len, batches)) == [4, 5] and sorted(i for b in batches for i in b) == list(range(9))
        assert sorted(map(len, length_grouped_batches([3] * 9, 4, seed=seed))) == [1, 4, 4]


def test_kto_reference_point_is_the_clamped_mismatched_mean_without_gradient():
    pc, pr, rc, rr, lc, lr, _ = _batch(4)
    below = _ours("kto", pc, pr, rc, rr, lc, lr, -torch.ones(12, dtype=F64), 0.5)
    zero = _ours("kto", pc, pr, rc, rr, lc, lr, torch.zeros(12, dtype=F64), 0.5)
    assert torch.equal(below, zero)  # z = max(0, mean): a negative estimate is 0
    m = torch.full((12,), 0.8, dtype=F64, requires_grad=True)
    assert not _ours("kto", pc, pr, rc, rr, lc, lr, m, 0.5).requires_grad  # no gradient reaches the KL estimate


def test_log1mexp_is_stable_at_both_ends():
    x = torch.tensor([-1e-10, -1e-3, -0.5, -0.7, -5.0, -50.0], dtype=F64)
    expected = torch.tensor([math.log(-math.expm1(v)) for v in x.tolist()], dtype=F64)
    assert torch.allclose(log1mexp(x), expected, rtol=1e-12, atol=1e-20)  # math.expm1(-50) rounds 1 - 2e-22 to 1
    assert torch.isfinite(log1mexp(torch.tensor([-1e-30, -1e4]))).all()


# ----------------------------------------------------------------------------- Plackett-Luce DPO


def test_plackett_luce_with_two_replies_is_dpo():
    pc, pr, rc, rr, *_ = _batch(5)
    pl = plackett_luce_loss(torch.stack([pc - rc, pr - rr], 1), 0.4)
    assert torch.allclose(pl, dpo_loss(pc, pr, rc, rr, 0.4).losses, rtol=0, atol=sum_tol(1e2, 8, EPS64))


def test_plackett_luce_is_the_sequential_choice_probability():
    """-log of: pick the best from all K by softmax, then the second from the rest, ... (eq. 18, by hand)."""
    rho = torch.randn(3, 4, dtype=F64, generator=torch.Generator().manual_seed(6))
    beta = 0.7
    for i in range(3):
        s, p = (beta * rho[i]).tolist(), 1.0
        for k in range(4):
            p *= math.exp(s[k]) / sum(math.exp(v) for v in s[k:])
        assert plackett_luce_loss(rho, beta)[i].item() == pytest.approx(-math.log(p), rel=1e-12)


def test_tied_replies_leave_their_stage_out_of_the_ranking_loss():
    rho = torch.randn(2, 4, dtype=F64, generator=torch.Generator().manual_seed(7))
    rewards = [[0.9, 0.0, 0.0, -0.5], [0.4, 0.3, 0.2, 0.1]]  # first ranking: replies 2 and 3 tie
    batch = collate_rankings([{"prompt_ids": [1], "ranked_ids": [[2], [3], [4], [5]], "ranked_rewards": r} for r in rewards], 0)
    assert batch["strict"].tolist() == [[True, False, True, True], [True, True, True, True]]
    stages = [[0.7 * rho[i, k] - torch.logsumexp(0.7 * rho[i, k:], 0) for k in range(4)] for i in range(2)]
    want = torch.stack([-(stages[0][0] + stages[0][2]), -sum(stages[1])])  # tied stage 1 dropped; stage 3 is 0
    assert torch.allclose(plackett_luce_loss(rho, 0.7, batch["strict"]), want, rtol=0, atol=sum_tol(1e2, 8, EPS64))


def test_ranking_training_with_two_replies_is_dpo_training(tiny, tokenized, tmp_path):
    model, tok = tiny
    data = tokenized.select(range(8)).select_columns(["prompt_ids", "chosen_ids", "rejected_ids"])
    ranked = Dataset.from_dict({"prompt_ids": data["prompt_ids"],
                                "ranked_ids": [[c, r] for c, r in zip(data["chosen_ids"], data["rejected_ids"])]})
    kw = dict(max_steps=2, batch_size=4, learning_rate=1e-3, warmup_steps=0, optimizer="adamw", show_progress=False,
              length_bucketing=False)
    a, b = copy.deepcopy(model), copy.deepcopy(model)
    ha = train_dpo(a, data, None, DPOConfig(output_dir=str(tmp_path / "a"), **kw), tok.pad_token_id, ref_model=model)
    hb = train_rankings(b, ranked, None, DPOConfig(output_dir=str(tmp_path / "b"), **kw), tok.pad_token_id, ref_model=model)
    assert [h["loss"] for h in ha] == pytest.approx([h["loss"] for h in hb], abs=1e-6)
    batch = collate_rankings([ranked[0], ranked[1]], tok.pad_token_id)
    assert batch["num_ranked"] == 2 and torch.equal(batch["input_ids"], collate_preferences([data[0], data[1]], tok.pad_token_id)["input_ids"])


# ----------------------------------------------------------------------------- reference-free losses, KTO's rows


@pytest.mark.parametrize("loss_type", ["simpo", "orpo"])
def test_reference_free_losses_train_with_no_reference_at_all(tiny, tokenized, tmp_path, monkeypatch, loss_type):
    model, tok = copy.deepcopy(tiny[0]), tiny[1]
    data = tokenized.select(range(8)).select_columns(["prompt_ids", "chosen_ids", "rejected_ids"])  # no ref columns
    forwards = []
    real = train_module.model_sequence_logprobs
    monkeypatch.setattr(train_module, "model_sequence_logprobs", lambda m, b: forwards.append(m) or real(m, b))
    cfg = DPOConfig(output_dir=str(tmp_path), loss_type=loss_type, beta=1.0, max_steps=3, batch_size=4, learning_rate=3e-3,
                    warmup_steps=0, optimizer="adamw", show_progress=False)
    history = train_dpo(model, data, None, cfg, tok.pad_token_id, ref_model=None)
    assert len(forwards) == 3 and all(m is model for m in forwards)  # one policy forward per step, nothing else
    assert history[-1]["loss"] < history[0]["loss"]


def test_mismatched_rows_pair_each_prompt_with_the_previous_reply(tokenized):
    ex = [tokenized[i] for i in range(3)]
    batch = collate_preferences(ex, 0, mismatched=True)
    replies = [e["chosen_ids"] for e in ex] + [e["rejected_ids"] for e in ex]
    for row in range(6):
        p, r = ex[row % 3]["prompt_ids"], replies[row - 1]
        n = len(p) + len(r)
        assert batch["mismatched_input_ids"][row, :n].tolist() == list(p) + list(r)
        assert batch["mismatched_response_mask"][row].sum() == len(r)


def test_kto_trains_against_a_reference(tiny, tokenized, tmp_path):
    model, tok = copy.deepcopy(tiny[0]), tiny[1]
    data = tokenized.select(range(8))
    cfg = DPOConfig(output_dir=str(tmp_path), loss_type="kto", beta=0.5, max_steps=4, batch_size=4, learning_rate=3e-3,
                    warmup_steps=0, optimizer="adamw", show_progress=False)
    history = train_dpo(model, data, None, cfg, tok.pad_token_id, ref_model=tiny[0])
    assert history[-1]["rewards/margins"] > history[0]["rewards/margins"]


# ----------------------------------------------------------------------------- online DPO



def test_online_dpo_labels_on_policy_pairs_and_resumes_exactly(tiny, tokenized, tmp_path):
    model, tok = tiny
    prompts = Dataset.from_dict({"record_id": list(range(8)), "prompt": list(tokenized["prompt"][:8]),
                                 "prompt_ids": list(tokenized["prompt_ids"][:8])})
    reward = lambda ps, rs: torch.tensor([float(len(r)) for r in rs])  # noqa: E731  (longer is better)
    step = OnlineDPOStep(DPOConfig(), model, tok, reward, max_new_tokens=6)
    pairs = step.label_pairs(model, {k: prompts[k][:4] for k in prompts.column_names})
    assert pairs
    for p in pairs:  # re-scored from the token ids themselves: the chosen reply is the longer text
        chosen, rejected = (tok.decode([t for t in p[k] if t != tok.eos_token_id], skip_special_tokens=True).strip()
                            for k in ("chosen_ids", "rejected_ids"))
        assert len(chosen) > len(rejected) and p["reward_gap"] == len(chosen) - len(rejected)
    # a labeller that ties everything: no pair, a zero loss and a zero gradient
    tied = OnlineDPOStep(DPOConfig(), model, tok, lambda ps, rs: torch.zeros(len(rs)), max_new_tokens=6)
    policy = copy.deepcopy(model)
    loss, metrics = tied(policy, {k: prompts[k][:4] for k in prompts.column_names})
    loss.backward()
    assert loss.item() == 0 and metrics["pairs/ties"] == 4 and all(p.grad is None or not p.grad.any() for p in policy.parameters())
    kw = dict(batch_size=4, learning_rate=1e-3, warmup_steps=0, optimizer="adamw", show_progress=False, save_every=1)
    full = copy.deepcopy(model)
    hf = train_online_dpo(full, model, tok, prompts, None, DPOConfig(output_dir=str(tmp_path / "f"), max_steps=4, **kw), reward, 6)
    part = copy.deepcopy(model)
    train_online_dpo(part, model, tok, prompts, None, DPOConfig(output_dir=str(tmp_path / "p"), max_steps=2, **kw), reward, 6)
    resumed = copy.deepcopy(model)
    hp = train_online_dpo(resumed, model, tok, prompts, None, DPOConfig(output_dir=str(tmp_path / "p"), max_steps=4, **kw), reward, 6)
    assert [h["loss"] for h in hf] == [h["loss"] for h in hp]
    assert all(torch.equal(a, b) for a, b in zip(full.parameters(), resumed.parameters()))
    assert {"pairs/labelled", "pairs/ties"} <= set(hf[-1])

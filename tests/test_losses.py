import math

import pytest
import torch
from precision import EPS64, assert_close_tol, sum_tol

from minidpo.logprobs import token_logprobs
from minidpo.losses import dpo_loss, dpo_metrics, sft_loss
from minidpo.logprobs import sequence_logprobs


def _logps(seed=0, n=6, scale=5.0):
    g = torch.Generator().manual_seed(seed)
    return [(-scale * torch.rand(n, generator=g, dtype=torch.float64) * 10) for _ in range(4)]


def test_loss_is_log2_when_policy_equals_reference():
    pc, pr, _, _ = _logps()
    for loss_type in ("sigmoid",):
        out = dpo_loss(pc, pr, pc.clone(), pr.clone(), beta=0.1, loss_type=loss_type)
        torch.testing.assert_close(out.losses, torch.full_like(pc, math.log(2)))
        assert (out.chosen_rewards == 0).all() and (out.rejected_rewards == 0).all()


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1, 0.3])
def test_sigmoid_and_cdpo_match_formula_by_hand(label_smoothing):
    pc, pr, rc, rr = _logps(1)
    beta = 0.25
    out = dpo_loss(pc, pr, rc, rr, beta=beta, label_smoothing=label_smoothing)
    for i in range(len(pc)):
        h = float((pc[i] - rc[i]) - (pr[i] - rr[i]))
        sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
        expected = -(1 - label_smoothing) * math.log(sig(beta * h)) - label_smoothing * math.log(sig(-beta * h))
        # float64 on both sides; the log-sigmoid's argument beta*h carries the rounding of h's 4-term sum
        assert abs(out.losses[i].item() - expected) <= sum_tol(abs(expected) + abs(beta * h), 4, EPS64)
        assert abs(out.chosen_rewards[i].item() - beta * float(pc[i] - rc[i])) <= sum_tol(beta * float(pc[i].abs() + rc[i].abs()), 2, EPS64)
        assert abs(out.rejected_rewards[i].item() - beta * float(pr[i] - rr[i])) <= sum_tol(beta * float(pr[i].abs() + rr[i].abs()), 2, EPS64)


def test_ipo_and_hinge_match_formula_by_hand():
    pc, pr, rc, rr = _logps(2)
    beta = 0.5
    h = (pc - rc) - (pr - rr)
    torch.testing.assert_close(dpo_loss(pc, pr, rc, rr, beta, "hinge").losses, torch.relu(1 - beta * h))
    torch.testing.assert_close(dpo_loss(pc, pr, rc, rr, beta, "ipo").losses, (h - 1 / (2 * beta)) ** 2)
    lc, lr = torch.tensor([3.0, 5, 7, 1, 2, 9]), torch.tensor([4.0, 4, 2, 8, 1, 3])
    per_token = (pc - rc) / lc - (pr - rr) / lr
    out = dpo_loss(pc, pr, rc, rr, beta, "ipo", chosen_lengths=lc, rejected_lengths=lr)
    torch.testing.assert_close(out.losses, (per_token - 1 / (2 * beta)) ** 2)


def test_gradient_finite_differences_vs_autograd():
    pc, pr, rc, rr = _logps(3)
    beta = 0.3
    for loss_type, ls in (("sigmoid", 0.0), ("sigmoid", 0.2), ("ipo", 0.0), ("hinge", 0.0)):
        x = torch.cat([pc, pr]).requires_grad_(True)
        f = lambda v: dpo_loss(v[:6], v[6:], rc, rr, beta, loss_type, ls).losses.sum()  # noqa: E731
        f(x).backward()
        eps = 1e-6
        numeric = torch.stack([(f(x.detach() + eps * e) - f(x.detach() - eps * e)) / (2 * eps) for e in torch.eye(12, dtype=torch.float64)])
        # central differences: rounding of f (~EPS64 |f| / eps) plus truncation eps^2 |f^(3)| / 6, where
        # |f^(3)| <= (2 beta)^3 for these losses (IPO's is 0, the logistic's third derivative is below 1/10)
        fd_tol = sum_tol(abs(f(x.detach()).item()), 12, EPS64) / eps + eps**2 * (2 * beta) ** 3 / 6
        assert_close_tol(x.grad, numeric, fd_tol)


def test_dpo_gradient_is_weighted_by_sigma_of_reward_error():
    # DPO paper, section 4: dL/dlog pi(y_w) = -beta * sigma(r_l - r_w), dL/dlog pi(y_l) = +beta * sigma(r_l - r_w),
    # with r = beta log pi/pi_ref: pairs the implicit reward model gets wrong weigh most.
    pc, pr, rc, rr = _logps(4)
    beta = 0.2
    pc, pr = pc.clone().requires_grad_(True), pr.clone().requires_grad_(True)
    out = dpo_loss(pc, pr, rc, rr, beta)
    out.losses.sum().backward()
    weight = torch.sigmoid(out.rejected_rewards - out.chosen_rewards)
    torch.testing.assert_close(pc.grad, -beta * weight)
    torch.testing.assert_close(pr.grad, beta * weight)


@pytest.mark.parametrize("loss_type, ls", [("sigmoid", 0.0), ("sigmoid", 0.4), ("ipo", 0.0), ("hinge", 0.0)])
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_finite_for_huge_log_ratios(loss_type, ls, sign):
    pc = torch.tensor([sign * 1e4], requires_grad=True)
    zero = torch.zeros(1)
    out = dpo_loss(pc, -pc, zero, zero, beta=10.0, loss_type=loss_type, label_smoothing=ls)
    out.losses.sum().backward()
    assert torch.isfinite(out.losses).all() and torch.isfinite(pc.grad).all()
    assert (out.losses >= 0).all()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(beta=0.0), "beta must be"),
        (dict(beta=-1.0), "beta must be"),
        (dict(loss_type="dpo_typo"), "loss_type must be one of"),
        (dict(label_smoothing=0.5), r"label_smoothing must be in \[0, 0.5\)"),
        (dict(label_smoothing=-0.1), r"label_smoothing must be in \[0, 0.5\)"),
        (dict(loss_type="ipo", label_smoothing=0.1), "only applies"),
    ],
)
def test_bad_hyperparameters(kwargs, match):
    x = torch.zeros(2)
    with pytest.raises(ValueError, match=match):
        dpo_loss(x, x, x, x, **kwargs)


def test_metrics_use_trl_names():
    pc, pr, rc, rr = _logps(5)
    m = dpo_metrics(dpo_loss(pc, pr, rc, rr), pc, pr)
    assert set(m) == {"loss", "rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins", "logps/chosen", "logps/rejected"}
    assert m["rewards/margins"] == pytest.approx(m["rewards/chosen"] - m["rewards/rejected"])


def test_sft_loss_is_token_mean_nll_over_response_tokens():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 6, 11, generator=g)
    ids = torch.randint(0, 11, (2, 6), generator=g)
    mask = torch.tensor([[0, 0, 1, 1, 1, 0], [0, 1, 1, 0, 0, 0]])
    terms = []
    for b in range(2):
        for t in range(1, 6):
            if mask[b, t]:
                terms.append(-torch.log_softmax(logits[b, t - 1], -1)[ids[b, t]])
    token_logps = token_logprobs(logits, ids)[mask[:, 1:].bool()]  # the 5 reply tokens
    torch.testing.assert_close(sft_loss(token_logps), torch.stack(terms).mean())
    # and it agrees with the sequence sums divided by the token count
    torch.testing.assert_close(sft_loss(token_logps), -sequence_logprobs(logits, ids, mask).sum() / 5)
    with pytest.raises(ValueError, match="no reply tokens"):
        sft_loss(token_logps[:0])

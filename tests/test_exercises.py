"""Each exercise check accepts a correct answer and rejects typical wrong ones with a hint."""

import torch
import torch.nn.functional as F

from minidpo import exercises as ex


def test_bradley_terry_checks(capsys):
    assert ex.check_bradley_terry_prob(lambda a, b: torch.sigmoid(a - b))
    assert not ex.check_bradley_terry_prob(lambda a, b: torch.sigmoid(b - a))
    assert "swap" in capsys.readouterr().out
    assert not ex.check_bradley_terry_prob(lambda a, b: 1 / 0)
    assert "ZeroDivisionError" in capsys.readouterr().out
    assert ex.check_reward_shift(0.0) and not ex.check_reward_shift(3.0)


def test_plackett_luce_check(capsys):
    def pl(s, rk):
        o = s[rk]
        return sum(o[k] - torch.logsumexp(o[k:], 0) for k in range(len(o)))

    def wrong(s, rk):
        return sum(s[i] - torch.logsumexp(s, 0) for i in rk)

    assert ex.check_plackett_luce_logprob(pl)
    assert not ex.check_plackett_luce_logprob(wrong)
    assert "not yet ranked" in capsys.readouterr().out


def test_kl_optimum_checks(capsys):
    assert ex.check_kl_constrained_optimum(lambda ref, r, b: ref * torch.exp(r / b) / (ref * torch.exp(r / b)).sum(-1, keepdim=True))
    assert not ex.check_kl_constrained_optimum(lambda ref, r, b: torch.softmax(torch.log(ref) + b * r, -1))
    assert "r / beta" in capsys.readouterr().out
    assert not ex.check_kl_constrained_optimum(lambda ref, r, b: ref * torch.exp(r / b))
    assert "sum to 1" in capsys.readouterr().out
    assert ex.check_optimal_value(lambda ref, r, b: b * torch.log((ref * torch.exp(r / b)).sum(-1)))
    assert not ex.check_optimal_value(lambda ref, r, b: (ref * r).sum(-1))


def test_dpo_checks(capsys):
    def stable(pc, pr, rc, rr, b):
        return -F.logsigmoid(b * ((pc - rc) - (pr - rr)))

    def unstable(pc, pr, rc, rr, b):
        return -torch.log(torch.sigmoid(b * ((pc - rc) - (pr - rr))))

    assert ex.check_dpo_loss(stable)
    assert not ex.check_dpo_loss(unstable)
    assert "logsigmoid" in capsys.readouterr().out
    assert not ex.check_dpo_loss(lambda pc, pr, rc, rr, b: F.logsigmoid(b * ((pc - rc) - (pr - rr))))
    assert "negative" in capsys.readouterr().out
    assert ex.check_dpo_gradient_weight(lambda rc, rr: torch.sigmoid(rr - rc))
    assert not ex.check_dpo_gradient_weight(lambda rc, rr: torch.sigmoid(rc - rr))
    assert ex.check_ipo_loss(lambda pc, pr, rc, rr, b: ((pc - rc) - (pr - rr) - 1 / (2 * b)) ** 2)
    assert not ex.check_ipo_loss(lambda pc, pr, rc, rr, b: ((pc - rc) - (pr - rr) - 1 / b) ** 2)
    assert ex.check_ipo_target_margin(2.0) and not ex.check_ipo_target_margin(4.0)


def test_family_checks(capsys):
    import torch.nn.functional as F

    good = lambda pc, pr, lc, lr, b, g: -F.logsigmoid(b * (pc / lc - pr / lr) - g)  # noqa: E731
    assert ex.check_simpo_loss(good)
    assert not ex.check_simpo_loss(lambda pc, pr, lc, lr, b, g: -F.logsigmoid(b * (pc - pr) - g))
    assert "average" in capsys.readouterr().out
    assert not ex.check_simpo_loss(lambda pc, pr, lc, lr, b, g: -F.logsigmoid(b * (pc / lc - pr / lr) + g))

    def pl(rho, b):
        s = b * rho
        return -sum(s[:, k] - torch.logsumexp(s[:, k:], -1) for k in range(rho.shape[1]))

    assert ex.check_plackett_luce_loss(pl)
    assert not ex.check_plackett_luce_loss(lambda rho, b: -(b * rho[:, 0] - torch.logsumexp(b * rho, -1)))
    assert "first choice" in capsys.readouterr().out

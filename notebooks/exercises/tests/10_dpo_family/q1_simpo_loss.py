from otter.test_files import test_case

OK_FORMAT = False

name = "q1_simpo_loss"
points = None

@test_case(points=1, hidden=False)
def test_values_and_common_mistakes(my_simpo_loss):
    import math, torch
    from minidpo import losses
    from minidpo.grade import forbid
    banned = [s.fn for s in losses.LOSSES.values()] + [losses.dpo_loss, losses.plackett_luce_loss]
    pc = torch.tensor([-4.0, -9.0, -6.0], dtype=torch.float64)
    pr = torch.tensor([-6.0, -3.0, -10.0], dtype=torch.float64)
    lc = torch.tensor([2.0, 3.0, 4.0], dtype=torch.float64)
    lr = torch.tensor([3.0, 1.0, 2.0], dtype=torch.float64)
    with forbid(*banned):
        out = torch.as_tensor(my_simpo_loss(pc, pr, lc, lr, 2.0, 0.5))
    assert out.shape == (3,), 'one loss per pair'
    assert out.dtype == torch.float64, f"keep the inputs' dtype (the checks use float64), got {out.dtype}"
    rows = list(zip(pc.tolist(), pr.tolist(), lc.tolist(), lr.tolist()))

    def per_pair(z):
        return torch.tensor([math.log1p(math.exp(-z(*row))) for row in rows], dtype=torch.float64)
    if torch.allclose(out, per_pair(lambda w, l, m, k: 2.0 * (w / m - l / k) - 0.5), rtol=1e-09, atol=1e-12):
        return
    mistakes = [(per_pair(lambda w, l, m, k: 2.0 * (w / m - l / k) + 0.5), 'your loss adds gamma: the chosen reply must win by gamma, so gamma is subtracted'), (per_pair(lambda w, l, m, k: 2.0 * (w / m - l / k - 0.5)), "your beta also multiplies gamma: gamma is outside beta's product"), (per_pair(lambda w, l, m, k: 2.0 * (w - l) - 0.5), "your rewards are summed log-probs: SimPO's reward is the average per token"), (per_pair(lambda w, l, m, k: 2.0 * (w / k - l / m) - 0.5), "your lengths are swapped: each log-prob is divided by its own reply's length"), (per_pair(lambda w, l, m, k: w / m - l / k - 0.5), "your loss is what you'd get without beta: where does beta enter?"), (per_pair(lambda w, l, m, k: -(2.0 * (w / m - l / k) - 0.5)), 'your loss favours the rejected reply: check the sign of the margin')]
    for wrong, hint in mistakes:
        assert not torch.allclose(out, wrong, rtol=1e-06, atol=1e-09), hint
    raise AssertionError('wrong values for beta = 2, gamma = 0.5')


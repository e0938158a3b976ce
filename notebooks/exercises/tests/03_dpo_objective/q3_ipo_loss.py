from otter.test_files import test_case

OK_FORMAT = False

name = "q3_ipo_loss"
points = None

@test_case(points=1, hidden=False)
def test_values_and_common_mistakes(my_ipo_loss):

    def _forbidden():
        from minidpo import losses, preference
        return (losses.dpo_loss, losses.plackett_luce_loss, losses.sft_loss, *(spec.fn for spec in losses.LOSSES.values()), preference.bradley_terry_prob, preference.bradley_terry_nll, preference.plackett_luce_logprob)
    import torch
    from minidpo.grade import forbid
    pc = torch.tensor([-5.0, -8.0, -3.0], dtype=torch.float64)
    pr = torch.tensor([-6.0, -7.0, -4.0], dtype=torch.float64)
    rc = torch.tensor([-5.5, -7.0, -3.0], dtype=torch.float64)
    rr = torch.tensor([-5.0, -7.5, -5.0], dtype=torch.float64)
    beta = 0.25
    with forbid(*_forbidden()):
        loss = torch.as_tensor(my_ipo_loss(pc, pr, rc, rr, beta), dtype=torch.float64)
    assert loss.shape == (3,), f'one loss per pair: expected shape (3,), got {tuple(loss.shape)}'
    h = [a - c - (b - d) for a, b, c, d in zip(pc.tolist(), pr.tolist(), rc.tolist(), rr.tolist())]

    def per_pair(f, gaps=h):
        return torch.tensor([f(x) for x in gaps], dtype=torch.float64)
    if torch.allclose(loss, per_pair(lambda x: (x - 1 / (2 * beta)) ** 2), rtol=1e-09, atol=1e-12):
        return
    mistakes = [(per_pair(lambda x: (beta * x - 1 / (2 * beta)) ** 2), "your loss multiplies h by beta inside the square, as DPO does: IPO's beta only sets the target"), (per_pair(lambda x: (beta * x - 0.5) ** 2), 'your loss puts beta inside the square, (beta h - 1/2)^2: that rescales it by beta^2'), (per_pair(lambda x: (x - 1 / beta) ** 2), 'your target gap is 1 / beta: check the factor 2'), (per_pair(lambda x: (x - beta / 2) ** 2), 'your target gap is beta / 2: check where beta goes'), (per_pair(lambda x: (x + 1 / (2 * beta)) ** 2), 'your target gap has the wrong sign: the chosen reply should win by 1 / (2 beta)'), (per_pair(lambda x: (x - 1 / (2 * beta)) ** 2, [a - b for a, b in zip(pc.tolist(), pr.tolist())]), "your loss ignores the reference's log-probs: h is a gap of log-ratios (policy over reference)")]
    for wrong, hint in mistakes:
        assert not torch.allclose(loss, wrong, rtol=1e-06, atol=1e-09), hint
    raise AssertionError('wrong values for a policy that differs from the reference (beta = 0.25)')


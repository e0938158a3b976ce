from otter.test_files import test_case

OK_FORMAT = False

name = "q1_dpo_loss"
points = None

@test_case(points=1, hidden=False)
def test_values_and_common_mistakes(my_dpo_loss):

    def _forbidden():
        from minidpo import losses, preference
        return (losses.dpo_loss, losses.plackett_luce_loss, losses.sft_loss, *(spec.fn for spec in losses.LOSSES.values()), preference.bradley_terry_prob, preference.bradley_terry_nll, preference.plackett_luce_logprob)
    import math, torch
    from minidpo.grade import forbid
    pc = torch.tensor([-5.0, -8.0, -3.0], dtype=torch.float64)
    pr = torch.tensor([-6.0, -7.0, -4.0], dtype=torch.float64)
    rc = torch.tensor([-5.5, -7.0, -3.0], dtype=torch.float64)
    rr = torch.tensor([-5.0, -7.5, -5.0], dtype=torch.float64)
    with forbid(*_forbidden()):
        loss = torch.as_tensor(my_dpo_loss(pc, pr, rc, rr, 0.5), dtype=torch.float64)
    assert loss.shape == (3,), f'one loss per pair: expected shape (3,), got {tuple(loss.shape)}'
    h = [a - c - (b - d) for a, b, c, d in zip(pc.tolist(), pr.tolist(), rc.tolist(), rr.tolist())]

    def per_pair(f, gaps=h):
        return torch.tensor([f(x) for x in gaps], dtype=torch.float64)
    log_sigmoid = lambda z: -math.log1p(math.exp(-z))
    if torch.allclose(loss, per_pair(lambda x: -log_sigmoid(0.5 * x)), rtol=1e-06, atol=1e-09):
        return
    mistakes = [(per_pair(lambda x: -log_sigmoid(x)), "your loss is what you'd get without beta: where does beta enter?"), (per_pair(lambda x: -log_sigmoid(x / 0.5)), 'your loss divides the gap by beta: check how beta enters'), (per_pair(lambda x: -log_sigmoid(-0.5 * x)), 'your loss favours the rejected reply: check the sign of the log-ratio gap h (chosen minus rejected)'), (per_pair(lambda x: log_sigmoid(0.5 * x)), 'your loss is negative: a loss is minus a log-likelihood'), (per_pair(lambda x: -log_sigmoid(0.5 * x), [a - b for a, b in zip(pc.tolist(), pr.tolist())]), "your loss ignores the reference's log-probs: h is a gap of log-ratios (policy over reference)")]
    for wrong, hint in mistakes:
        assert not torch.allclose(loss, wrong, rtol=1e-06, atol=1e-09), hint
    raise AssertionError('wrong values for a policy that differs from the reference (beta = 0.5)')


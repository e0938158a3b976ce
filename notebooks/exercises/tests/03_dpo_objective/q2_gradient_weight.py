from otter.test_files import test_case

OK_FORMAT = False

name = "q2_gradient_weight"
points = None

@test_case(points=1, hidden=False)
def test_values_and_common_mistakes(my_gradient_weight):

    def _forbidden():
        from minidpo import losses, preference
        return (losses.dpo_loss, losses.plackett_luce_loss, losses.sft_loss, *(spec.fn for spec in losses.LOSSES.values()), preference.bradley_terry_prob, preference.bradley_terry_nll, preference.plackett_luce_logprob)
    import math, torch
    from minidpo.grade import forbid
    rw = torch.tensor([1.0, -0.5, 2.0, 0.0], dtype=torch.float64)
    rl = torch.tensor([0.0, 0.5, -1.0, 0.0], dtype=torch.float64)
    with forbid(*_forbidden()):
        w = torch.as_tensor(my_gradient_weight(rw, rl))
    assert w.shape == (4,), f'one weight per pair: expected shape (4,), got {tuple(w.shape)}'
    assert w.dtype == torch.float64, f"keep the inputs' dtype (the checks use float64), got {w.dtype}"
    sigmoid = lambda z: 1 / (1 + math.exp(-z))
    gaps = [b - a for a, b in zip(rw.tolist(), rl.tolist())]

    def per_pair(f):
        return torch.tensor([f(x) for x in gaps], dtype=torch.float64)
    if torch.allclose(w, per_pair(sigmoid), rtol=1e-09, atol=1e-12):
        return
    mistakes = [(per_pair(lambda x: sigmoid(-x)), 'your weight is large on the pairs the model already ranks right: check the sign of the reward gap'), (per_pair(lambda x: sigmoid(x) * (1 - sigmoid(x))), 'your weight is the derivative of sigma, sigma (1 - sigma): differentiate -log sigma instead'), (per_pair(lambda x: math.log1p(math.exp(x))), 'your weight is the per-pair loss -log sigma(r_w - r_l), not its gradient')]
    for wrong, hint in mistakes:
        assert not torch.allclose(w, wrong, rtol=1e-06, atol=1e-09), hint
    assert abs(w[3].item() - 0.5) < 1e-09, 'equal implicit rewards: the model is undecided, weight 1/2'
    raise AssertionError('wrong weights for r_w = [1, -0.5, 2, 0], r_l = [0, 0.5, -1, 0]')


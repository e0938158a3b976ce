from otter.test_files import test_case

OK_FORMAT = False

name = "q1_kl_optimum"
points = None

@test_case(points=1, hidden=False)
def test_values_and_common_mistakes(my_kl_constrained_optimum):
    import math, torch
    from minidpo import kl_optimum as klo
    from minidpo.grade import forbid
    ref = torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]], dtype=torch.float64)
    r = torch.tensor([[1.0, 0.0, -1.0], [0.0, 2.0, 0.5]], dtype=torch.float64)
    with forbid(klo.kl_constrained_optimum, klo.partition_function, klo.log_partition_function, klo.maximize_kl_objective, klo.reward_kl_frontier, klo.implicit_reward):
        pi = torch.as_tensor(my_kl_constrained_optimum(ref.clone(), r.clone(), 0.5), dtype=torch.float64)
    assert pi.shape == (2, 3), f'expected shape (2, 3), got {tuple(pi.shape)}'

    def tilt(ref, r, exponent):
        rows = [[p * math.exp(exponent(v)) for p, v in zip(a, b)] for a, b in zip(ref.tolist(), r.tolist())]
        return torch.tensor([[w / sum(row) for w in row] for row in rows], dtype=torch.float64)
    if torch.allclose(pi, tilt(ref, r, lambda v: v / 0.5), rtol=1e-06, atol=1e-09):
        return
    uniform = torch.full((2, 3), 1 / 3, dtype=torch.float64)
    mistakes = [(tilt(ref, r, lambda v: v * 0.5), 'your exponent multiplies the reward by beta: how does beta enter it?'), (tilt(ref, r, lambda v: v), "your pi* is what you'd get without beta (or with beta = 1): where does beta enter?"), (tilt(uniform, r, lambda v: v / 0.5), 'your pi* leaves out pi_ref: the optimum reweights the reference'), (tilt(ref, r, lambda v: -v / 0.5), 'your pi* favours the low rewards: check the sign of the exponent')]
    for wrong, hint in mistakes:
        assert not torch.allclose(pi, wrong, rtol=1e-06, atol=1e-09), hint
    if not torch.allclose(pi.sum(-1), torch.ones(2, dtype=torch.float64)):
        assert not torch.allclose(pi.sum(0), torch.ones(3, dtype=torch.float64)), 'your columns sum to 1, not your rows: normalise over the responses of each prompt (the last dim)'
        raise AssertionError('each row must sum to 1: normalise over the responses of each prompt')
    raise AssertionError('wrong values for ref = [[.5, .3, .2], [.1, .1, .8]], r = [[1, 0, -1], [0, 2, .5]], beta = 0.5')


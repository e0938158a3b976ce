from otter.test_files import test_case

OK_FORMAT = False

name = "q2_optimal_value"
points = None

@test_case(points=1, hidden=False)
def test_values_and_common_mistakes(my_optimal_value):
    import math, torch
    from minidpo import kl_optimum as klo
    from minidpo.grade import forbid
    ref = torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]], dtype=torch.float64)
    r = torch.tensor([[1.0, 0.0, -1.0], [0.0, 2.0, 0.5]], dtype=torch.float64)
    with forbid(klo.kl_constrained_optimum, klo.partition_function, klo.log_partition_function, klo.maximize_kl_objective, klo.reward_kl_frontier, klo.implicit_reward, klo.kl_regularized_objective):
        v = torch.as_tensor(my_optimal_value(ref.clone(), r.clone(), 0.5), dtype=torch.float64)
        constant = torch.as_tensor(my_optimal_value(ref.clone(), torch.full((2, 3), 1.5, dtype=torch.float64), 0.5), dtype=torch.float64)
    assert v.shape == (2,), f'expected one value per prompt, shape (2,), got {tuple(v.shape)}'
    rows = list(zip(ref.tolist(), r.tolist()))

    def log_z(exponent, probs=None):
        return torch.tensor([math.log(sum(((q if probs is None else probs) * math.exp(exponent(x)) for q, x in zip(p, s)))) for p, s in rows], dtype=torch.float64)
    if torch.allclose(v, 0.5 * log_z(lambda x: x / 0.5), rtol=1e-06, atol=1e-09):
        assert torch.allclose(constant, torch.full((2,), 1.5, dtype=torch.float64)), 'with the same reward c for every response, pi* = pi_ref and the optimal value is c'
        return
    tilted = [[q * math.exp(x / 0.5) for q, x in zip(p, s)] for p, s in rows]
    mistakes = [(log_z(lambda x: x / 0.5), 'your value is log Z itself: what multiplies it in J(pi*)?'), (0.5 * log_z(lambda x: x * 0.5), 'your exponent multiplies the reward by beta: how does beta enter it?'), (0.5 * log_z(lambda x: x / 0.5, probs=1.0), "your sum leaves out pi_ref(y): Z sums over the reference's probabilities"), ((ref * r).sum(-1), "your value is the reference's expected reward, J(pi_ref): that is not the maximum"), (r.max(-1).values, 'your value is the best reward: that is only the limit beta -> 0'), (torch.tensor([sum((w * x for w, x in zip(t, s))) / sum(t) for t, (p, s) in zip(tilted, rows)], dtype=torch.float64), 'your value is E_pi*[r], the expected reward of pi* without its KL penalty')]
    for wrong, hint in mistakes:
        assert not torch.allclose(v, wrong, rtol=1e-06, atol=1e-09), hint
    raise AssertionError('wrong values for ref = [[.5, .3, .2], [.1, .1, .8]], r = [[1, 0, -1], [0, 2, .5]], beta = 0.5')


from otter.test_files import test_case

OK_FORMAT = False

name = "q1_bradley_terry_prob"
points = None

@test_case(points=1, hidden=False)
def test_values_and_common_mistakes(my_bradley_terry_prob):
    import math, torch
    from minidpo import preference
    from minidpo.grade import forbid
    r_a = torch.tensor([2.0, -1.0, 0.5, 3.0], dtype=torch.float64)
    r_b = torch.tensor([0.5, 1.5, 0.5, 1.0], dtype=torch.float64)
    with forbid(preference.bradley_terry_prob):
        p = torch.as_tensor(my_bradley_terry_prob(r_a, r_b))
    assert p.shape == (4,), f'elementwise: expected shape (4,), got {tuple(p.shape)}'
    assert p.dtype == torch.float64, f"keep the inputs' dtype (the checks use float64), got {p.dtype}"
    expected = torch.tensor([1 / (1 + math.exp(b - a)) for a, b in zip(r_a.tolist(), r_b.tolist())], dtype=torch.float64)
    if torch.allclose(p, expected, rtol=1e-09, atol=1e-12):
        return
    mistakes = [(1 - expected, 'your values are the probability that b beats a: check the order of the reward gap'), (expected.log(), 'your values are log-probabilities: return the probability itself'), (r_a / (r_a + r_b), 'your values treat the rewards as strengths, r_a / (r_a + r_b): how do rewards enter Bradley-Terry?')]
    for wrong, hint in mistakes:
        assert not torch.allclose(p, wrong, rtol=1e-06, atol=1e-09), hint
    assert torch.allclose(p[2], torch.tensor(0.5, dtype=torch.float64)), 'equal rewards must give 1/2'
    raise AssertionError('wrong values for r_a = [2, -1, 0.5, 3], r_b = [0.5, 1.5, 0.5, 1]')


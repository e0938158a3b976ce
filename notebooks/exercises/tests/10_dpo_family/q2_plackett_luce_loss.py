from otter.test_files import test_case

OK_FORMAT = False

name = "q2_plackett_luce_loss"
points = None

@test_case(points=1, hidden=False)
def test_k2_is_dpo_and_k3(my_plackett_luce_loss):
    import math, torch
    from minidpo import losses
    from minidpo.grade import forbid
    banned = [s.fn for s in losses.LOSSES.values()] + [losses.dpo_loss, losses.plackett_luce_loss]
    rho = torch.tensor([[1.0, -0.5], [0.2, 0.9]], dtype=torch.float64)
    rho3 = torch.tensor([[1.0, -0.5, 0.3], [0.2, 0.9, -1.2]], dtype=torch.float64)
    with forbid(*banned):
        got = torch.as_tensor(my_plackett_luce_loss(rho, 0.5), dtype=torch.float64)
        got3 = torch.as_tensor(my_plackett_luce_loss(rho3, 0.5), dtype=torch.float64)
    want = -torch.nn.functional.logsigmoid(0.5 * (rho[:, 0] - rho[:, 1]))
    assert got.shape == (2,) and got3.shape == (2,), 'one loss per row'
    log_sigmoid = lambda z: -math.log1p(math.exp(-z))

    def per_row(f, beta=0.5):
        return torch.tensor([f([beta * v for v in row]) for row in rho3.tolist()], dtype=torch.float64)

    def stages(s, pool):
        return -sum((s[k] - math.log(sum((math.exp(s[j]) for j in pool(k)))) for k in range(len(s))))
    if torch.allclose(got3, per_row(lambda s: stages(s, lambda k: range(k, 3))), atol=1e-09):
        assert torch.allclose(got, want), 'with K = 2 this must be the DPO loss'
        return
    mistakes = [(per_row(lambda s: -sum((log_sigmoid(s[k] - s[k + 1]) for k in range(2)))), 'your loss compares adjacent places only (k against k + 1): which replies are still available at stage k?'), (per_row(lambda s: -sum((log_sigmoid(s[k] - s[j]) for k in range(3) for j in range(k + 1, 3)))), 'your loss sums DPO losses over all pairs: Plackett-Luce chooses one reply at a time among those left'), (per_row(lambda s: stages(s, lambda k: range(3))), 'your loss lets every stage choose among all replies again: can a reply already placed be chosen again?'), (per_row(lambda s: stages(s, lambda k: range(k, 3)), beta=1.0), "your loss is what you'd get without beta: where does beta enter?"), (per_row(lambda s: stages(s[::-1], lambda k: range(k, 3))), 'your loss reads each row worst first: column 0 is the best reply')]
    for wrong, hint in mistakes:
        assert not torch.allclose(got3, wrong, atol=1e-06), hint
    assert torch.allclose(got, want), 'with K = 2 this must be the DPO loss'
    raise AssertionError('wrong for K = 3 (beta = 0.5)')


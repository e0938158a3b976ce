from otter.test_files import test_case

OK_FORMAT = False

name = "q2_ipo"
points = None

@test_case(points=1, hidden=False)
def test_values_and_common_mistakes(my_ipo_loss):
    import torch
    from minidpo import losses
    from minidpo.grade import forbid
    forbidden = [losses.dpo_loss, *[spec.fn for spec in losses.LOSSES.values()]]
    pc = torch.tensor([-10.0, -20.0, -5.0], dtype=torch.float64)
    pr = torch.tensor([-12.0, -19.0, -9.0], dtype=torch.float64)
    rc = torch.tensor([-11.0, -20.5, -6.0], dtype=torch.float64)
    rr = torch.tensor([-10.0, -21.0, -7.0], dtype=torch.float64)
    nw = torch.tensor([4.0, 10.0, 2.0], dtype=torch.float64)
    nl = torch.tensor([8.0, 2.0, 5.0], dtype=torch.float64)
    with forbid(*forbidden):
        out = my_ipo_loss(pc, pr, rc, rr, nw, nl, 0.5)
    assert isinstance(out, torch.Tensor) and out.shape == (3,), 'return one loss per pair, shape (B,)'
    rows = list(zip((pc - rc).tolist(), (pr - rr).tolist(), nw.tolist(), nl.tolist()))

    def per_pair(f):
        return torch.tensor([f(*row) for row in rows], dtype=torch.float64)
    got = out.double()
    if torch.allclose(got, per_pair(lambda w, l, m, k: (w / m - l / k - 1.0) ** 2), atol=1e-09):
        return
    mistakes = [(per_pair(lambda w, l, m, k: (w - l - 1.0) ** 2), 'your loss does not divide by the reply lengths'), (per_pair(lambda w, l, m, k: (w / k - l / m - 1.0) ** 2), "your lengths are swapped: each log-ratio is divided by its own reply's length"), (per_pair(lambda w, l, m, k: ((w - l) / m - 1.0) ** 2), "your loss divides both log-ratios by the chosen reply's length: each by its own"), (per_pair(lambda w, l, m, k: ((w - l) / (m + k) - 1.0) ** 2), 'your loss divides the margin by the total length: each log-ratio by its own length'), (per_pair(lambda w, l, m, k: (0.5 * (w / m - l / k) - 1.0) ** 2), "your loss multiplies the margin by beta, as DPO does: IPO's beta sets the target"), (per_pair(lambda w, l, m, k: (w / m - l / k - 2.0) ** 2), 'your target is 1 / beta: check the factor 2'), (per_pair(lambda w, l, m, k: (w / m - l / k + 1.0) ** 2), 'your target has the wrong sign')]
    for wrong, hint in mistakes:
        assert not torch.allclose(got, wrong, atol=1e-06), hint
    z = torch.zeros(2)
    zero = my_ipo_loss(z - 3.0, z - 4.0, z - 3.0, z - 4.0, torch.tensor([3.0, 5.0]), torch.tensor([2.0, 7.0]), 0.25)
    assert torch.allclose(zero, torch.full((2,), 4.0)), 'policy = reference: the loss is (1 / (2 beta))^2'
    raise AssertionError('wrong values for a policy that differs from the reference (beta = 0.5)')


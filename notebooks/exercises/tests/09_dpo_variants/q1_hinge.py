from otter.test_files import test_case

OK_FORMAT = False

name = "q1_hinge"
points = None

@test_case(points=1, hidden=False)
def test_values_and_common_mistakes(my_hinge_loss):
    import torch
    from minidpo import losses
    from minidpo.grade import forbid
    forbidden = [losses.dpo_loss, *[spec.fn for spec in losses.LOSSES.values()]]
    pc = torch.tensor([-10.0, -20.0, -5.0, -8.0])
    pr = torch.tensor([-12.0, -19.0, -9.0, -8.5])
    rc = torch.tensor([-11.0, -20.5, -6.0, -8.0])
    rr = torch.tensor([-10.0, -21.0, -7.0, -8.0])
    with forbid(*forbidden):
        out = my_hinge_loss(pc, pr, rc, rr, 0.4)
    assert isinstance(out, torch.Tensor) and out.shape == (4,), 'return one loss per pair, shape (B,)'
    h = [a - c - (b - d) for a, b, c, d in zip(pc.tolist(), pr.tolist(), rc.tolist(), rr.tolist())]

    def per_pair(f, gaps=h):
        return torch.tensor([f(x) for x in gaps])
    if torch.allclose(out.float(), per_pair(lambda x: max(0.0, 1 - 0.4 * x)), atol=1e-05):
        return
    mistakes = [(per_pair(lambda x: max(0.0, 1 - x)), "your loss is what you'd get without beta: where does beta enter?"), (per_pair(lambda x: 0.4 * max(0.0, 1 - x)), 'your beta multiplies the whole hinge: it scales the margin inside the max'), (per_pair(lambda x: max(0.0, 1 + 0.4 * x)), 'your loss grows with the margin: check the sign of h (chosen minus rejected)'), (per_pair(lambda x: 1 - 0.4 * x), 'your loss goes negative past the margin: a hinge is clipped at 0'), (per_pair(lambda x: max(0.0, 1 - 0.4 * x), [a - b for a, b in zip(pc.tolist(), pr.tolist())]), "your margin ignores the reference's log-probs: h is a gap of log-ratios")]
    for wrong, hint in mistakes:
        assert not torch.allclose(out.float(), wrong, atol=1e-05), hint
    raise AssertionError('wrong values for a policy that differs from the reference (beta = 0.4)')


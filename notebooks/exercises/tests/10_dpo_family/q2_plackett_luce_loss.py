from otter.test_files import test_case

OK_FORMAT = False

name = "q2_plackett_luce_loss"
points = None
all_or_nothing = True

@test_case(points=1, hidden=False)
def test_k2_is_dpo(my_plackett_luce_loss):
    import torch
    rho = torch.tensor([[1.0, -0.5], [0.2, 0.9]], dtype=torch.float64)
    got = torch.as_tensor(my_plackett_luce_loss(rho, 0.5), dtype=torch.float64)
    want = -torch.nn.functional.logsigmoid(0.5 * (rho[:, 0] - rho[:, 1]))
    assert torch.allclose(got, want), 'with K = 2 this must be the DPO loss'


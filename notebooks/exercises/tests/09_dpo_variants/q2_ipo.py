from otter.test_files import test_case

OK_FORMAT = False

name = "q2_ipo"
points = None
all_or_nothing = True

@test_case(points=1, hidden=False)
def test_shape_and_zero_margin(my_ipo_loss):
    import torch
    z = torch.zeros(2)
    out = my_ipo_loss(z - 3.0, z - 4.0, z - 3.0, z - 4.0, torch.tensor([3.0, 5.0]), torch.tensor([2.0, 7.0]), 0.25)
    assert isinstance(out, torch.Tensor) and out.shape == (2,), 'return one loss per pair, shape (B,)'
    assert torch.allclose(out, torch.full((2,), 4.0)), 'policy = reference: the loss is (1 / (2 beta))^2'


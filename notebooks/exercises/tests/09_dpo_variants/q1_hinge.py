from otter.test_files import test_case

OK_FORMAT = False

name = "q1_hinge"
points = None
all_or_nothing = True

@test_case(points=1, hidden=False)
def test_shape_and_zero_margin(my_hinge_loss):
    import torch
    z = torch.zeros(3)
    out = my_hinge_loss(z - 5.0, z - 7.0, z - 5.0, z - 7.0, 0.5)
    assert isinstance(out, torch.Tensor) and out.shape == (3,), 'return one loss per pair, shape (B,)'
    assert torch.allclose(out, torch.ones(3)), 'policy = reference (h = 0): the hinge loss is 1'


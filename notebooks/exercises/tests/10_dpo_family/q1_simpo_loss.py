from otter.test_files import test_case

OK_FORMAT = False

name = "q1_simpo_loss"
points = None
all_or_nothing = True

@test_case(points=1, hidden=False)
def test_shape(my_simpo_loss):
    import torch
    out = my_simpo_loss(torch.tensor([-4.0, -9.0]), torch.tensor([-6.0, -3.0]), torch.tensor([2.0, 3.0]), torch.tensor([3.0, 1.0]), 2.0, 0.5)
    assert torch.as_tensor(out).shape == (2,), 'one loss per pair'


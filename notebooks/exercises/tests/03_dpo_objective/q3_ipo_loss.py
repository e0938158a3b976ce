from otter.test_files import test_case

OK_FORMAT = False

name = "q3_ipo_loss"
points = None
all_or_nothing = True

@test_case(points=1, hidden=False)
def test_zero_at_the_target(my_ipo_loss):
    import torch
    beta = 0.25
    z = torch.zeros(2, dtype=torch.float64)
    loss = torch.as_tensor(my_ipo_loss(torch.tensor([2.0, -3.0], dtype=torch.float64), z, torch.tensor([0.0, -5.0], dtype=torch.float64), z, beta), dtype=torch.float64)
    assert loss.shape == (2,), f'one loss per pair: expected shape (2,), got {tuple(loss.shape)}'
    assert torch.allclose(loss, z), 'a pair whose log-ratio gap equals 1 / (2 beta) has loss 0'


from otter.test_files import test_case

OK_FORMAT = False

name = "q1_bradley_terry_prob"
points = None
all_or_nothing = True

@test_case(points=1, hidden=False)
def test_equal_rewards(my_bradley_terry_prob):
    import torch
    p = my_bradley_terry_prob(torch.tensor([0.0, 1.5]), torch.tensor([0.0, 1.5]))
    assert torch.allclose(torch.as_tensor(p), torch.tensor([0.5, 0.5])), 'equal rewards must give 1/2'


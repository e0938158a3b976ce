from otter.test_files import test_case

OK_FORMAT = False

name = "q2_gradient_weight"
points = None
all_or_nothing = True

@test_case(points=1, hidden=False)
def test_equal_rewards(my_gradient_weight):
    import torch
    w = torch.as_tensor(my_gradient_weight(torch.tensor([0.0, 2.0]), torch.tensor([0.0, 2.0])))
    assert w.shape == (2,) and torch.allclose(w.double(), torch.full((2,), 0.5, dtype=torch.float64)), 'equal implicit rewards: the model is undecided, weight 1/2'


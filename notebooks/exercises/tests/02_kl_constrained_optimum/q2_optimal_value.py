from otter.test_files import test_case

OK_FORMAT = False

name = "q2_optimal_value"
points = None
all_or_nothing = True

@test_case(points=1, hidden=False)
def test_shape_and_constant_reward(my_optimal_value):
    import torch
    ref = torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]], dtype=torch.float64)
    r = torch.full((2, 3), 1.5, dtype=torch.float64)
    v = torch.as_tensor(my_optimal_value(ref, r, 0.5), dtype=torch.float64)
    assert v.shape == (2,), f'expected one value per prompt, shape (2,), got {tuple(v.shape)}'
    assert torch.allclose(v, torch.full((2,), 1.5, dtype=torch.float64)), 'with the same reward c for every response, pi* = pi_ref and the optimal value is c'


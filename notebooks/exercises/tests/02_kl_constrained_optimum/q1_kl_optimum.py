from otter.test_files import test_case

OK_FORMAT = False

name = "q1_kl_optimum"
points = None
all_or_nothing = True

@test_case(points=1, hidden=False)
def test_shape_and_rows_sum_to_one(my_kl_constrained_optimum):
    import torch
    ref = torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]], dtype=torch.float64)
    r = torch.tensor([[1.0, 0.0, -1.0], [0.0, 2.0, 0.5]], dtype=torch.float64)
    pi = torch.as_tensor(my_kl_constrained_optimum(ref, r, 0.5))
    assert pi.shape == (2, 3), f'expected shape (2, 3), got {tuple(pi.shape)}'
    assert torch.allclose(pi.sum(-1).double(), torch.ones(2, dtype=torch.float64)), 'each row must sum to 1'


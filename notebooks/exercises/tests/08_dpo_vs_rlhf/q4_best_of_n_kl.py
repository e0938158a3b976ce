from otter.test_files import test_case

OK_FORMAT = False

name = "q4_best_of_n_kl"
points = None
all_or_nothing = True

@test_case(points=1, hidden=False)
def test_n_equals_one(my_best_of_n_kl):
    import torch
    kl = my_best_of_n_kl(torch.tensor([0.2, 0.5, 0.3], dtype=torch.float64), torch.tensor([1.0, -1.0, 0.0]), 1)
    assert isinstance(kl, float), 'return a Python float'
    assert abs(kl) < 1e-12, 'the best of one draw is a draw from the reference: KL 0'


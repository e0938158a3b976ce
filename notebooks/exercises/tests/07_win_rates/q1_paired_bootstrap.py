from otter.test_files import test_case

OK_FORMAT = False

name = "q1_paired_bootstrap"
points = None
all_or_nothing = True

@test_case(points=1, hidden=False)
def test_format(my_paired_bootstrap_ci):
    import torch
    a = torch.tensor([1.0, 0.0, 1.0, 0.5, 1.0, 0.0], dtype=torch.float64)
    b = torch.tensor([0.0, 0.0, 1.0, 0.5, 0.0, 1.0], dtype=torch.float64)
    out = my_paired_bootstrap_ci(a, b, 500, 0.9, 1)
    assert isinstance(out, tuple) and len(out) == 2 and all((isinstance(x, float) for x in out)), 'return (low, high), two floats'
    assert out[0] <= out[1], 'low <= high'
    assert my_paired_bootstrap_ci(a, a, 200, 0.95, 0) == (0.0, 0.0), 'identical arms: every resampled difference is 0'


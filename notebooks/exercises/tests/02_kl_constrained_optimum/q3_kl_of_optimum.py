from otter.test_files import test_case

OK_FORMAT = False

name = "q3_kl_of_optimum"
points = None
all_or_nothing = True

@test_case(points=0, hidden=False)
def test_is_a_nonnegative_number(kl_optimum_nats):
    assert isinstance(kl_optimum_nats, (int, float)), 'set a Python float (use float(...) on a tensor)'
    assert kl_optimum_nats >= 0, 'a KL divergence is never negative'


from otter.test_files import test_case

OK_FORMAT = False

name = "q2_count_positions"
points = None
all_or_nothing = True

@test_case(points=0, hidden=False)
def test_are_ints(n_scored, n_padding):
    assert isinstance(n_scored, int) and isinstance(n_padding, int), 'set two Python ints (int(...) on a tensor)'


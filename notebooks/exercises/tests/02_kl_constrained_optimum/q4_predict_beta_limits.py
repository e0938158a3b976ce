from otter.test_files import test_case

OK_FORMAT = False

name = "q4_predict_beta_limits"
points = None
all_or_nothing = True

@test_case(points=0, hidden=False)
def test_format(beta_to_infinity, beta_to_zero):
    assert beta_to_infinity in ('a', 'b', 'c', 'd') and beta_to_zero in ('a', 'b', 'c', 'd'), 'answer "a", "b", "c" or "d" for each'


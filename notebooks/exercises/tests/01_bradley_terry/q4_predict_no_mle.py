from otter.test_files import test_case

OK_FORMAT = False

name = "q4_predict_no_mle"
points = None
all_or_nothing = True

@test_case(points=0, hidden=False)
def test_format(no_mle_prediction):
    assert no_mle_prediction in ('a', 'b', 'c'), 'answer "a", "b" or "c"'


from otter.test_files import test_case

OK_FORMAT = False

name = "q4_predict_margins"
points = None
all_or_nothing = True

@test_case(points=0, hidden=False)
def test_format(margin_prediction):
    assert margin_prediction in ('a', 'b', 'c'), 'answer "a", "b" or "c"'


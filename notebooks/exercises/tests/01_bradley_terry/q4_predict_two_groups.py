from otter.test_files import test_case

OK_FORMAT = False

name = "q4_predict_two_groups"
points = None
all_or_nothing = True

@test_case(points=0, hidden=False)
def test_format(two_groups_prediction):
    assert two_groups_prediction in ('a', 'b', 'c', 'd'), 'answer "a", "b", "c" or "d"'


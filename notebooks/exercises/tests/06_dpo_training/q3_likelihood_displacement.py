from otter.test_files import test_case

OK_FORMAT = False

name = "q3_likelihood_displacement"
points = None
all_or_nothing = True

@test_case(points=0, hidden=False)
def test_format(displacement_answer):
    assert displacement_answer in ('a', 'b', 'c', 'd'), 'answer "a", "b", "c" or "d"'


from otter.test_files import test_case

OK_FORMAT = False

name = "q5_why_z_cancels"
points = None
all_or_nothing = True

@test_case(points=0, hidden=False)
def test_format(z_cancels_answer):
    assert z_cancels_answer in ('a', 'b', 'c', 'd'), 'answer "a", "b", "c" or "d"'


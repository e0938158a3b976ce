from otter.test_files import test_case

OK_FORMAT = False

name = "q4_which_settle"
points = None
all_or_nothing = True

@test_case(points=0, hidden=False)
def test_format(never_settles_answer, flat_region_answer):
    assert never_settles_answer in ('a', 'b', 'c', 'd') and flat_region_answer in ('a', 'b', 'c', 'd'), 'answer "a", "b", "c" or "d"'


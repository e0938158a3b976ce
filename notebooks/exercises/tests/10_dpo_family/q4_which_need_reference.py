from otter.test_files import test_case

OK_FORMAT = False

name = "q4_which_need_reference"
points = None
all_or_nothing = True

@test_case(points=0, hidden=False)
def test_format(reference_free):
    assert reference_free in ('a', 'b', 'c', 'd'), 'answer "a", "b", "c" or "d"'


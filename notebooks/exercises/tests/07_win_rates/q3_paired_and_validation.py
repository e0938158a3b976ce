from otter.test_files import test_case

OK_FORMAT = False

name = "q3_paired_and_validation"
points = None
all_or_nothing = True

@test_case(points=0, hidden=False)
def test_format(paired_answer, validation_answer):
    assert paired_answer in ('a', 'b', 'c', 'd') and validation_answer in ('a', 'b', 'c', 'd'), 'answer "a", "b", "c" or "d"'


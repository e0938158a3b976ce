from otter.test_files import test_case

OK_FORMAT = False

name = "q4_ipo_noisy_margin"
points = None
all_or_nothing = True

@test_case(points=0, hidden=False)
def test_is_a_number(ipo_noisy_margin):
    assert isinstance(ipo_noisy_margin, (int, float)), 'set a number'


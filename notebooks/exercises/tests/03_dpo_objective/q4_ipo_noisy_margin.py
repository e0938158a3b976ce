from otter.test_files import test_case

OK_FORMAT = False

name = "q4_ipo_noisy_margin"
points = None
all_or_nothing = True

@test_case(points=0, hidden=False)
def test_are_numbers(ipo_noisy_margin, ipo_noisy_min_loss):
    assert isinstance(ipo_noisy_margin, (int, float)) and isinstance(ipo_noisy_min_loss, (int, float)), 'set two numbers'


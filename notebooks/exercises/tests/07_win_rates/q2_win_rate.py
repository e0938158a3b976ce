from otter.test_files import test_case

OK_FORMAT = False

name = "q2_win_rate"
points = None
all_or_nothing = True

@test_case(points=0, hidden=False)
def test_format(dpo_win_rate):
    assert 0.0 <= float(dpo_win_rate) <= 1.0, 'a win rate lies in [0, 1]'


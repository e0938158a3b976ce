from otter.test_files import test_case

OK_FORMAT = False

name = "q2_reward_shift"
points = None
all_or_nothing = True

@test_case(points=0, hidden=False)
def test_is_a_number(reward_shift_change):
    assert isinstance(reward_shift_change, (int, float)), 'set a number'


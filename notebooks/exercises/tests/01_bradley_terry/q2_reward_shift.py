from otter.test_files import test_case

OK_FORMAT = False

name = "q2_reward_shift"
points = None
all_or_nothing = True

@test_case(points=0, hidden=False)
def test_is_a_number_and_not_a_known_slip(reward_shift_change):
    from minidpo.grade import answer_digest
    assert isinstance(reward_shift_change, (int, float)), 'set a number'
    slips = {'207cd6d1a9c3': 'your change is the shift of the rewards itself: the question asks how p(a > b) changes', 'a92f5c0400bf': 'your change is exp(3): what does Bradley-Terry compare, the rewards or their gap?', '772d26182b4e': 'your change is sigma(3): what does Bradley-Terry compare, the rewards or their gap?', '8d22d7eaaf89': 'your change is sigma(3) - 1/2: what does Bradley-Terry compare, the rewards or their gap?'}
    hint = slips.get(answer_digest(f'{round(float(reward_shift_change), 4) + 0.0:.4f}'))
    assert hint is None, hint


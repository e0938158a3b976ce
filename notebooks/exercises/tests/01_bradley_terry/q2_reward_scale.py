from otter.test_files import test_case

OK_FORMAT = False

name = "q2_reward_scale"
points = None
all_or_nothing = True

@test_case(points=0, hidden=False)
def test_is_a_number_and_not_a_known_slip(reward_scale_change):
    from minidpo.grade import answer_digest
    assert isinstance(reward_scale_change, (int, float)), 'set a number'
    slips = {'297d62f39fae': 'your change is 0: that is what adding a constant does; multiplying every reward by 3 also multiplies the gap r_a - r_b', '772d26182b4e': 'your value is the new probability itself: the question asks for the new one minus the old one', 'b3e3a3a52550': 'your change adds 3 to the gap: multiplying every reward by 3 multiplies the gap by 3', '8b4f25e96f6b': 'your change multiplies the probability by 3: it is the rewards that are multiplied, and a probability never exceeds 1'}
    hint = slips.get(answer_digest(f'{round(float(reward_scale_change), 4) + 0.0:.4f}'))
    assert hint is None, hint


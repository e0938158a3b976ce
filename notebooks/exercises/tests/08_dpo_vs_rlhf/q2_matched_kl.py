from otter.test_files import test_case

OK_FORMAT = False

name = "q2_matched_kl"
points = None

@test_case(points=0, hidden=False)
def test_format_and_not_a_known_slip(higher_at_matched_kl, reward_gap):
    from minidpo.grade import answer_digest
    assert higher_at_matched_kl in ('DPO', 'PPO'), 'answer "DPO" or "PPO"'
    assert isinstance(float(reward_gap), float), 'reward_gap is a number'
    assert (float(reward_gap) > 0) == (higher_at_matched_kl == 'DPO'), "your method and the sign of your gap disagree: reward_gap is DPO's reward minus PPO's"
    slips = {'e9c6b33bc658': "your gap is PPO's reward minus DPO's: check its sign", '453fc453218a': 'your gap compares the best points of the two curves: compare them at KL 2.0', '9642a5b48a98': 'your gap uses the nearest measured points: interpolate each curve at KL 2.0', '31076a5234a0': 'your gap uses the points just below KL 2.0: interpolate each curve at KL 2.0'}
    hint = slips.get(answer_digest(f'{round(float(reward_gap), 4) + 0.0:.4f}'))
    assert hint is None, hint


from otter.test_files import test_case

OK_FORMAT = False

name = "q2_matched_kl"
points = None
all_or_nothing = True

@test_case(points=0, hidden=False)
def test_format(higher_at_matched_kl, reward_gap):
    assert higher_at_matched_kl in ('DPO', 'PPO'), 'answer "DPO" or "PPO"'
    assert isinstance(float(reward_gap), float), 'reward_gap is a number'


from otter.test_files import test_case

OK_FORMAT = False

name = "q2_reward_metrics"
points = None
all_or_nothing = True

@test_case(points=0, hidden=False)
def test_format(reward_accuracy, reward_margin):
    assert all((isinstance(float(x), float) for x in (reward_accuracy, reward_margin))), 'set two numbers'
    assert 0.0 <= float(reward_accuracy) <= 1.0, 'an accuracy lies in [0, 1]'


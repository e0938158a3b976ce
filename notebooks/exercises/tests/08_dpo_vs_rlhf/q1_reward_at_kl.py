from otter.test_files import test_case

OK_FORMAT = False

name = "q1_reward_at_kl"
points = None
all_or_nothing = True

@test_case(points=1, hidden=False)
def test_two_points(my_reward_at_kl):
    curve = [{'kl': 0.0, 'reward': 0.0}, {'kl': 2.0, 'reward': 1.0}]
    assert my_reward_at_kl(curve, 1.0) is not None and abs(my_reward_at_kl(curve, 1.0) - 0.5) < 1e-12, 'at the middle KL of two points, the middle of their rewards'
    assert my_reward_at_kl(curve, 3.0) is None, "outside the curve's KL range: None"


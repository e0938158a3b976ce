from otter.test_files import test_case

OK_FORMAT = False

name = "q2_reward_metrics"
points = None

@test_case(points=0, hidden=False)
def test_format_and_not_a_known_slip(reward_accuracy, reward_margin):
    from minidpo.grade import answer_digest
    assert all((isinstance(float(x), float) for x in (reward_accuracy, reward_margin))), 'set two numbers'
    assert 0.0 <= float(reward_accuracy) <= 1.0, 'an accuracy lies in [0, 1]'
    accuracy_slips = {'8cae7ad94e73': 'your accuracy counts ties as wins: a tie does not count', '2080cbb41226': "your accuracy compares the policy's log-probs alone: the rewards are log-ratios against the reference"}
    margin_slips = {'7c9ae09f2c62': "your margin is what you'd get without beta: the rewards are beta times the log-ratios", '985f8ba407e4': 'your margin is rejected minus chosen: check its sign', '4d6073ffed2e': 'your margin is a sum over the pairs: take the mean', '462c932f6678': "your margin compares the policy's log-probs alone: the rewards are log-ratios against the reference"}
    key = lambda x: answer_digest(f'{round(float(x), 4) + 0.0:.4f}')
    hint = accuracy_slips.get(key(reward_accuracy)) or margin_slips.get(key(reward_margin))
    assert hint is None, hint


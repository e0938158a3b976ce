from otter.test_files import test_case

OK_FORMAT = False

name = "q1_reward_at_kl"
points = None

@test_case(points=1, hidden=False)
def test_values_and_common_mistakes(my_reward_at_kl):
    from minidpo import evaluate
    from minidpo.grade import forbid
    curve = [{'kl': 2.0, 'reward': 0.5}, {'kl': 0.0, 'reward': 0.1}, {'kl': 5.0, 'reward': 0.2}]
    with forbid(evaluate.reward_at_kl):
        got = {kl: my_reward_at_kl(curve, kl) for kl in (-1.0, 0.0, 1.5, 2.0, 3.5, 5.0, 6.0)}
        single = my_reward_at_kl(curve[:1], 2.0)
    assert got[-1.0] is None and got[6.0] is None, "outside the curve's KL range return None: a frontier says nothing where it was not measured"
    assert got[0.0] is not None and got[2.0] is not None and (got[5.0] is not None), "at a point's own KL (the smallest and the largest included) return that point's reward"
    assert single is None, 'a curve of one point brackets nothing: None'
    at = lambda kl, value: abs(got[kl] - value) < 1e-07
    if not at(1.5, 0.4):
        assert not at(1.5, 0.13), 'your function takes the points in the order given: the curve is not sorted by KL'
        assert not at(1.5, 0.5), "your value is a point's reward: interpolate linearly between the two bracketing points"
        assert not at(1.5, 0.1), "your value is the lower point's reward: interpolate linearly between the two bracketing points"
        assert not at(1.5, 0.2), 'your interpolation weights are swapped: the nearer point must weigh more'
        raise AssertionError('wrong interpolation at KL 1.5 on the curve (2, 0.5), (0, 0.1), (5, 0.2)')
    assert at(0.0, 0.1) and at(2.0, 0.5) and at(5.0, 0.2), "at a point's own KL return that point's reward"
    assert at(3.5, 0.35), 'wrong interpolation at KL 3.5 on the curve (2, 0.5), (0, 0.1), (5, 0.2)'


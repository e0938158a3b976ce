from otter.test_files import test_case

OK_FORMAT = False

name = "q3_plackett_luce_logprob"
points = None

@test_case(points=1, hidden=False)
def test_two_and_four_items(my_plackett_luce_logprob):
    import math, torch
    from minidpo import preference
    from minidpo.grade import forbid
    s = torch.tensor([0.7, -0.4], dtype=torch.float64)
    with forbid(preference.plackett_luce_logprob):
        lp = torch.as_tensor(my_plackett_luce_logprob(s, [0, 1]), dtype=torch.float64)
        got = float(my_plackett_luce_logprob(torch.tensor([0.5, -1.0, 1.5, 0.2], dtype=torch.float64), [2, 0, 3, 1]))
    two = torch.allclose(lp, torch.nn.functional.logsigmoid(s[0] - s[1]))
    ordered = [1.5, 0.5, 0.2, -1.0]

    def stages(scores, pool):
        return sum((scores[k] - math.log(sum((math.exp(scores[j]) for j in pool(k)))) for k in range(len(scores))))
    if abs(got - stages(ordered, lambda k: range(k, 4))) < 1e-09:
        assert two, 'K = 2 must equal log sigma(s_a - s_b)'
        return
    mistakes = [(stages(ordered, lambda k: range(k, min(k + 2, 4))), 'your value compares adjacent places only (k against k + 1): which items are still available at stage k?'), (stages(ordered, lambda k: range(4)), 'your value lets every stage choose among all items again: can an item already placed be chosen once more?'), (stages([0.5, -1.0, 1.5, 0.2], lambda k: range(k, 4)), 'your value ignores `ranking` (it takes the items in index order): ranking[k] is the item placed k-th'), (stages(ordered[::-1], lambda k: range(k, 4)), 'your value reads the ranking worst first: ranking[0] is the best item')]
    for wrong, hint in mistakes:
        assert abs(got - wrong) > 1e-06, hint
    assert two, 'K = 2 must equal log sigma(s_a - s_b)'
    raise AssertionError('wrong log-probability for scores [0.5, -1, 1.5, 0.2] and ranking [2, 0, 3, 1]')


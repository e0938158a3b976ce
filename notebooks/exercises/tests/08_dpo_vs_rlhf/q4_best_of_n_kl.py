from otter.test_files import test_case

OK_FORMAT = False

name = "q4_best_of_n_kl"
points = None

@test_case(points=1, hidden=False)
def test_values_and_common_mistakes(my_best_of_n_kl):
    import math, torch
    from minidpo.grade import forbid
    from minidpo.rlhf import best_of_n
    probs, rewards = ([0.2, 0.5, 0.3], [1.0, -1.0, 0.0])
    with forbid(best_of_n.best_of_n_distribution, best_of_n.best_of_n_kl):
        one = my_best_of_n_kl(torch.tensor(probs, dtype=torch.float64), torch.tensor(rewards), 1)
        kl = my_best_of_n_kl(torch.tensor(probs, dtype=torch.float64), torch.tensor(rewards, dtype=torch.float64), 3)
    assert isinstance(one, float) and isinstance(kl, float), 'return a Python float'

    def by_hand(order, subtract=True, reverse=False):
        total, below = (0.0, 0.0)
        for i in order:
            q = (below + probs[i]) ** 3 - (below ** 3 if subtract else 0.0)
            total += probs[i] * math.log(probs[i] / q) if reverse else q * math.log(q / probs[i])
            below += probs[i]
        return total
    by_reward = [1, 2, 0]
    if abs(kl - by_hand(by_reward)) < 1e-10:
        assert abs(one) < 1e-12, 'the best of one draw is a draw from the reference: KL 0'
        return
    mistakes = [(by_hand([0, 1, 2]), 'your F accumulates the replies in the order given: the rewards are not sorted'), (by_hand(by_reward[::-1]), 'your F accumulates from the highest reward down: that is the worst of N'), (math.log(3) - 2 / 3, 'your value is the usual bound log N - (N-1)/N, not the exact KL'), (by_hand(by_reward, reverse=True), 'your value is KL(pi_ref || pi_BoN): the arguments are the other way round'), (by_hand(by_reward) / math.log(2), 'your KL is in bits (log base 2): return nats'), (by_hand(by_reward, subtract=False), 'your pi_BoN(y) is F(y)^N, the chance that the best is at most y: it must also not be strictly below')]
    for wrong, hint in mistakes:
        assert abs(kl - wrong) > 1e-07, hint
    assert abs(one) < 1e-12, 'the best of one draw is a draw from the reference: KL 0'
    raise AssertionError('wrong exact KL for pi_ref = [0.2, 0.5, 0.3], rewards [1, -1, 0], N = 3')


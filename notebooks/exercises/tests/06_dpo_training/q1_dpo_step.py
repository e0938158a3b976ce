from otter.test_files import test_case

OK_FORMAT = False

name = "q1_dpo_step"
points = None
all_or_nothing = True

@test_case(points=1, hidden=False)
def test_first_step_from_the_reference(my_dpo_step, reference, batch):
    import copy, math, torch
    policy = copy.deepcopy(reference).train()
    before = [p.detach().clone() for p in policy.parameters()]
    loss = my_dpo_step(policy, reference, batch, 0.1, torch.optim.SGD(policy.parameters(), lr=0.1))
    assert isinstance(loss, float), 'return the loss as a Python float (loss.item())'
    assert abs(loss - math.log(2)) < 1e-05, 'when the policy equals the reference every margin is 0, so the loss is log 2'
    assert any((not torch.equal(b, p) for b, p in zip(before, policy.parameters()))), 'the step must update the policy'


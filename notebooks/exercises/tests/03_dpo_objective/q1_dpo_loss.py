from otter.test_files import test_case

OK_FORMAT = False

name = "q1_dpo_loss"
points = None
all_or_nothing = True

@test_case(points=1, hidden=False)
def test_policy_equals_reference(my_dpo_loss):
    import math, torch
    lp = torch.tensor([-12.0, -3.5, -40.0], dtype=torch.float64)
    lr = torch.tensor([-9.0, -7.0, -41.0], dtype=torch.float64)
    loss = torch.as_tensor(my_dpo_loss(lp, lr, lp, lr, 0.1), dtype=torch.float64)
    assert loss.shape == (3,), f'one loss per pair: expected shape (3,), got {tuple(loss.shape)}'
    assert torch.allclose(loss, torch.full((3,), math.log(2), dtype=torch.float64)), "when the policy equals the reference, h = 0 and every pair's loss is log 2"


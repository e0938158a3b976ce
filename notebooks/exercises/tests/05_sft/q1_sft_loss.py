from otter.test_files import test_case

OK_FORMAT = False

name = "q1_sft_loss"
points = None
all_or_nothing = True

@test_case(points=1, hidden=False)
def test_scalar_and_uniform_logits(my_sft_loss):
    import math, torch
    ids = torch.tensor([[3, 4, 5, 6, 0], [3, 7, 0, 0, 0]])
    mask = torch.tensor([[0, 0, 1, 1, 1], [0, 1, 1, 0, 0]])
    loss = torch.as_tensor(my_sft_loss(torch.zeros(2, 5, 10), ids, mask))
    assert loss.dim() == 0, f'return one number (a 0-dim tensor), got shape {tuple(loss.shape)}'
    assert abs(loss.item() - math.log(10)) < 1e-05, 'with uniform logits over V = 10 tokens the loss is log 10'


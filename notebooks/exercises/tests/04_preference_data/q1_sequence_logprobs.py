from otter.test_files import test_case

OK_FORMAT = False

name = "q1_sequence_logprobs"
points = None
all_or_nothing = True

@test_case(points=1, hidden=False)
def test_shape_and_uniform_logits(my_sequence_logprobs):
    import math, torch
    ids = torch.tensor([[3, 4, 5, 6, 0], [3, 7, 0, 0, 0]])
    mask = torch.tensor([[0, 0, 1, 1, 1], [0, 1, 1, 0, 0]])
    out = torch.as_tensor(my_sequence_logprobs(torch.zeros(2, 5, 10), ids, mask))
    assert out.shape == (2,), f'one log-prob per row: expected shape (2,), got {tuple(out.shape)}'
    assert torch.allclose(out.double(), torch.tensor([-3 * math.log(10), -2 * math.log(10)], dtype=torch.float64), atol=1e-05), 'with uniform logits, each reply token contributes -log V'


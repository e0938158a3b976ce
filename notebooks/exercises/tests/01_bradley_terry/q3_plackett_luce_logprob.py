from otter.test_files import test_case

OK_FORMAT = False

name = "q3_plackett_luce_logprob"
points = None
all_or_nothing = True

@test_case(points=1, hidden=False)
def test_two_items_is_bradley_terry(my_plackett_luce_logprob):
    import torch
    s = torch.tensor([0.7, -0.4], dtype=torch.float64)
    lp = torch.as_tensor(my_plackett_luce_logprob(s, [0, 1]), dtype=torch.float64)
    assert torch.allclose(lp, torch.nn.functional.logsigmoid(s[0] - s[1])), 'K = 2 must equal log sigma(s_a - s_b)'


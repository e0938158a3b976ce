from otter.test_files import test_case

OK_FORMAT = False

name = "q1_sft_loss"
points = None

@test_case(points=1, hidden=False)
def test_values_and_common_mistakes(my_sft_loss):
    import math, torch
    from minidpo import losses, train
    from minidpo import logprobs as lp
    from minidpo.grade import forbid
    logits = (2 * torch.randn(2, 6, 7, generator=torch.Generator().manual_seed(5))).requires_grad_(True)
    ids = torch.tensor([[3, 4, 5, 6, 1, 0], [3, 2, 6, 0, 0, 0]])
    mask = torch.tensor([[0, 0, 1, 1, 1, 1], [0, 0, 1, 0, 0, 0]])
    with forbid(train.sft_step, losses.sft_loss, losses.PairLogps.chosen_nll, lp.token_logprobs, lp.sequence_logprobs, lp.model_token_logprobs, lp.model_sequence_logprobs):
        loss = my_sft_loss(logits, ids, mask)
    assert torch.is_tensor(loss) and loss.dim() == 0, 'return one number (a 0-dim tensor)'
    assert loss.requires_grad, 'autograd must reach the logits: build the loss from them with torch operations'
    got = loss.item()
    z = logits.detach().double().tolist()
    log_softmax = lambda b, t, tok: z[b][t][tok] - math.log(sum((math.exp(v) for v in z[b][t])))

    def nll(shift=1, mask_at=0, masked=True):
        return [[-log_softmax(b, t - shift, int(ids[b, t])) for t in range(shift, 6) if not masked or mask[b, t - mask_at]] for b in range(2)]

    def token_mean(rows):
        flat = [x for row in rows for x in row]
        return sum(flat) / len(flat)
    right = token_mean(nll())
    if abs(got - right) < 0.0001:
        return
    rows = nll()
    mistakes = [(sum((sum(row) / len(row) for row in rows)) / 2, 'your loss is the mean of per-row means: one mean over all reply tokens of the batch'), (sum(map(sum, rows)) / 10, 'your mean divides by every position of the batch, not by the number of reply tokens'), (sum(map(sum, rows)), 'your loss is a sum over the reply tokens: take their mean'), (-right, 'your loss is negative: it is minus the mean log-probability'), (token_mean(nll(shift=0)), "off by one: your logits at position t score the token at t; which position's logits predict token t?"), (token_mean(nll(mask_at=1)), 'your mask is shifted against the tokens: response_mask[b, t] belongs to the token at t'), (token_mean(nll(masked=False)), 'your mean includes the prompt and padding tokens: only positions with response_mask 1 count')]
    for wrong, hint in mistakes:
        assert abs(got - wrong) > 0.0001, hint
    raise AssertionError('wrong value on random logits (B = 2, T = 6, V = 7)')


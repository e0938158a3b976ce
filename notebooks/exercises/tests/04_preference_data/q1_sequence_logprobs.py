from otter.test_files import test_case

OK_FORMAT = False

name = "q1_sequence_logprobs"
points = None

@test_case(points=1, hidden=False)
def test_values_and_common_mistakes(my_sequence_logprobs):
    import math, torch
    from minidpo import logprobs as lp
    from minidpo.grade import forbid
    logits = 2 * torch.randn(2, 5, 6, generator=torch.Generator().manual_seed(4))
    ids = torch.tensor([[3, 4, 5, 1, 0], [2, 1, 0, 0, 0]])
    mask = torch.tensor([[0, 0, 1, 1, 1], [0, 1, 1, 0, 0]])
    with forbid(lp.token_logprobs, lp.sequence_logprobs, lp.model_sequence_logprobs, lp.model_token_logprobs, lp.precompute_reference_logprobs):
        out = torch.as_tensor(my_sequence_logprobs(logits, ids, mask))
    assert out.shape == (2,), f'one log-prob per row: expected shape (2,), got {tuple(out.shape)}'
    z = logits.double().tolist()

    def by_hand(term, shift=1, mask_at=0, mean=False):
        out = []
        for b in range(2):
            terms = [term(b, t - shift, int(ids[b, t])) for t in range(shift, 5) if mask[b, t - mask_at]]
            out.append(sum(terms) / (len(terms) if mean else 1))
        return torch.tensor(out, dtype=torch.float64)
    log_softmax = lambda b, t, tok: z[b][t][tok] - math.log(sum((math.exp(v) for v in z[b][t])))
    got = out.double()
    if torch.allclose(got, by_hand(log_softmax), atol=0.0001):
        return
    all_positions = torch.tensor([sum((log_softmax(b, t - 1, int(ids[b, t])) for t in range(1, 5))) for b in range(2)], dtype=torch.float64)
    mistakes = [(by_hand(log_softmax, shift=0), "off by one: your logits at position t score the token at t; which position's logits predict token t?"), (by_hand(log_softmax, mask_at=1), 'your mask is shifted against the tokens: response_mask[b, t] belongs to the token at t'), (by_hand(log_softmax, mean=True), 'your value is a mean over the reply tokens: log pi(y | x) is their sum'), (all_positions, 'your sum includes the prompt (and padding) tokens: only positions with response_mask 1 count'), (by_hand(lambda b, t, tok: z[b][t][tok]), 'your terms are raw logits: they are not log-probabilities yet'), (by_hand(lambda b, t, tok: math.exp(log_softmax(b, t, tok))), 'your terms are probabilities: sum log-probabilities')]
    for wrong, hint in mistakes:
        assert not torch.allclose(got, wrong, atol=0.0001), hint
    for over_positions in (torch.log_softmax(logits.double(), dim=1), torch.log_softmax(logits[:, :-1].double(), 1)):
        wrong = by_hand(lambda b, t, tok: over_positions[b, t, tok].item())
        assert not torch.allclose(got, wrong, atol=0.0001), 'your log-softmax normalises over positions: normalise over the vocabulary (the last dim)'
    raise AssertionError('wrong values on random logits (B = 2, T = 5, V = 6)')


from otter.test_files import test_case

OK_FORMAT = False

name = "q1_dpo_step"
points = None

@test_case(points=1, hidden=False)
def test_first_step_and_a_moved_policy(my_dpo_step, reference, batch):
    import copy, math, torch
    from minidpo import logprobs, losses, train
    from minidpo.grade import forbid
    forbidden = [train.DPOStep.__call__, train.DPOStep.reference_logps, train.sft_step, losses.dpo_loss, losses.dpo_metrics, logprobs.token_logprobs, logprobs.sequence_logprobs, logprobs.model_token_logprobs, logprobs.model_sequence_logprobs, *[spec.fn for spec in losses.LOSSES.values()]]
    ids, attention, response = (batch['input_ids'], batch['attention_mask'], batch['response_mask'])
    moved = copy.deepcopy(reference)
    g = torch.Generator().manual_seed(6)
    with torch.no_grad():
        for p in moved.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=g))
        ref_logits = reference(input_ids=ids, attention_mask=attention).logits.double()
    mirror = copy.deepcopy(moved)
    policy_logits = mirror(input_ids=ids, attention_mask=attention).logits.double()

    def sequence_logps(logits, shift=1, mask=response, mean=False):
        T = ids.shape[1]
        logp = torch.log_softmax(logits[:, :T - shift], dim=-1).gather(-1, ids[:, shift:].unsqueeze(-1)).squeeze(-1)
        m = mask[:, shift:].double()
        return (logp * m).sum(-1) / (m.sum(-1) if mean else 1)

    def dpo(beta=0.5, sign=1.0, reduce=torch.mean, use_reference=True, interleaved=False, **how):
        pol, ref = (sequence_logps(policy_logits, **how), sequence_logps(ref_logits, **how) * use_reference)
        c, r = (slice(0, None, 2), slice(1, None, 2)) if interleaved else (slice(0, 3), slice(3, 6))
        margin = pol[c] - ref[c] - (pol[r] - ref[r])
        return reduce(-torch.nn.functional.logsigmoid(sign * beta * margin))
    policy = copy.deepcopy(moved).train()
    for p in policy.parameters():
        p.grad = torch.full_like(p, 0.01)
    start = [p.detach().clone() for p in policy.parameters()]
    with forbid(*forbidden):
        loss = my_dpo_step(policy, reference, batch, 0.5, torch.optim.SGD(policy.parameters(), lr=1.0))
    assert isinstance(loss, float), 'return the loss as a Python float (loss.item())'
    expected = dpo()
    if abs(loss - expected.item()) > 0.0001:
        mistakes = [(dpo(beta=1.0), "your loss is what you'd get without beta: where does beta enter?"), (dpo(sign=-1.0), 'your loss favours the rejected replies: check the sign of the margin (chosen minus rejected)'), (dpo(reduce=torch.sum), 'your loss is the sum over the pairs: take the mean'), (dpo(shift=0), "off by one: your logits at position t score the token at t; which position's logits predict token t?"), (dpo(mean=True), 'your log-probs are means over the reply tokens: log pi(y | x) is their sum'), (dpo(use_reference=False), "your margin ignores the reference's log-probs: it is a gap of log-ratios"), (dpo(interleaved=True), 'your chosen and rejected rows are mixed up: rows 0..B-1 hold the chosen replies, rows B..2B-1 the rejected ones')]
        for wrong, hint in mistakes:
            assert abs(loss - wrong.item()) > 0.0001, hint
        raise AssertionError('wrong loss for a policy that has moved away from the reference (beta = 0.5)')
    expected.backward()
    steps = [(p.detach() - s, -m.grad) for p, s, m in zip(policy.parameters(), start, mirror.parameters())]
    close = lambda a, b: (a - b).abs().max().item() <= 0.001 * b.abs().max().item() + 1e-06
    assert any(((a != 0).any() for a, _ in steps)), 'the step must update the policy (backward, then optimizer.step)'
    assert not all((close(a, b - 0.01) for a, b in steps)), 'your update also applies the stale gradients already in .grad: what must happen before backward()?'
    assert all((close(a, b) for a, b in steps)), 'your loss is right, but the update is not one SGD step on it'
    policy = copy.deepcopy(reference).train()
    with forbid(*forbidden):
        loss = my_dpo_step(policy, reference, batch, 0.1, torch.optim.SGD(policy.parameters(), lr=0.1))
    assert abs(loss - math.log(2)) < 1e-05, 'when the policy equals the reference every margin is 0, so the loss is log 2'


from otter.test_files import test_case

OK_FORMAT = False

name = "q1_paired_bootstrap"
points = None

@test_case(points=1, hidden=False)
def test_format_and_values(my_paired_bootstrap_ci):
    import torch
    from minidpo import evaluate, stats
    from minidpo.grade import forbid
    a = torch.tensor([0.9, 0.1, 0.75, 0.5, 0.3, 0.65], dtype=torch.float64)
    b = torch.tensor([0.2, 0.15, 0.7, 0.55, 0.1, 0.8], dtype=torch.float64)
    with forbid(evaluate.bootstrap_ci, evaluate.win_rate, stats.paired_difference):
        out = my_paired_bootstrap_ci(a, b, 500, 0.9, 1)
        same = my_paired_bootstrap_ci(a, a, 200, 0.95, 0)
    assert isinstance(out, tuple) and len(out) == 2 and all((isinstance(x, float) for x in out)), 'return (low, high), two floats'
    assert out[0] <= out[1], 'low <= high'
    d = (a - b).tolist()

    def means(rows, values=d):
        return [sum((values[i] for i in row)) / len(row) for row in rows]

    def ends(stats, q=0.05, interpolation='linear'):
        qs = torch.tensor([q, 1 - q], dtype=torch.float64)
        return [float(x) for x in torch.quantile(torch.tensor(stats, dtype=torch.float64), qs, interpolation=interpolation)]
    draws = lambda shape: torch.randint(0, 6, shape, generator=torch.Generator().manual_seed(1)).tolist()
    stats = means(draws((500, 6)))
    if max((abs(x - y) for x, y in zip(out, ends(stats)))) < 1e-09:
        assert same == (0.0, 0.0), 'identical arms: every resampled difference is 0'
        return
    g = torch.Generator().manual_seed(1)
    ia, ib = (torch.randint(0, 6, (500, 6), generator=g).tolist() for _ in range(2))
    unpaired = [x - y for x, y in zip(means(ia, a.tolist()), means(ib, b.tolist()))]
    transposed = means([list(col) for col in zip(*draws((6, 500)))])
    mistakes = [(ends(unpaired), "your resamples draw each arm's indices on their own: a paired resample uses the same indices for both arms"), (ends(stats, q=0.1), 'your interval cuts 1 - level from each end: what is alpha?'), (ends(stats, interpolation='nearest'), 'your quantiles do not interpolate linearly between order statistics'), (ends(stats, interpolation='lower'), 'your quantiles do not interpolate linearly between order statistics'), (ends(stats, interpolation='higher'), 'your quantiles do not interpolate linearly between order statistics'), (ends(transposed), "your randint call has shape (n, n_boot): the protocol's shape is (n_boot, n), one row per resample")]
    for wrong, hint in mistakes:
        assert max((abs(x - y) for x, y in zip(out, wrong))) > 1e-07, hint
    assert same == (0.0, 0.0), 'identical arms: every resampled difference is 0'
    raise AssertionError('does not follow the protocol on a = [.9, .1, .75, .5, .3, .65], b = [.2, .15, .7, .55, .1, .8] (n_boot 500, level 0.9, seed 1)')


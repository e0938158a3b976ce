"""The instruction experiment's instruments (minidpo.judges), each pinned to a case whose answer is known."""

import torch

from minidpo.preference import fit_linear_bradley_terry

from minidpo.judges import (
    CachedEncoder,
    content_fidelity,
    derive_markers,
    fit_preference_judge,
    judge_probes,
    length_controlled_rate,
    marker_rate,
    relevance_negatives,
    strip_opener,
)


class BagOfWords:
    """A stand-in Sentence-BERT: unit-norm hashed bag of words (deterministic, no download), counting calls."""

    def __init__(self, dim=64):
        self.dim, self.calls = dim, 0

    def encode(self, texts, **kw):
        self.calls += len(texts)
        out = torch.zeros(len(texts), self.dim)
        for i, t in enumerate(texts):
            for w in t.lower().replace(".", " ").split():
                out[i, sum(map(ord, w)) * 2654435761 % self.dim] += 1
        return torch.nn.functional.normalize(out + 1e-6, dim=-1)


def test_linear_bradley_terry_fit_is_the_stationary_point_and_recovers_the_direction():
    g = torch.Generator().manual_seed(0)
    w_true = torch.randn(5, dtype=torch.float64, generator=g)
    x = torch.randn(4000, 5, dtype=torch.float64, generator=g)
    wins = torch.rand(4000, dtype=torch.float64, generator=g) < torch.sigmoid(x @ w_true)
    diffs = torch.where(wins[:, None], x, -x)  # winner minus loser
    w = fit_linear_bradley_terry(diffs, l2=2e-4).requires_grad_(True)
    (torch.nn.functional.softplus(-(diffs @ w)).mean() + 0.5 * 2e-4 * (w @ w)).backward()  # the (l2 / 2) |w|^2 convention
    assert w.grad.abs().max() < 1e-7  # the optimum of the convex objective
    assert torch.nn.functional.cosine_similarity(w.detach(), w_true, dim=0) > 0.99


def test_relevance_negatives_never_pick_the_own_prompt():
    import pytest

    for n in (2, 3, 10, 101):
        other = relevance_negatives(n, seed=n)
        assert sorted(other) == list(range(n)) and all(o != i for i, o in enumerate(other))
    with pytest.raises(ValueError, match="at least 2"):
        relevance_negatives(1, seed=0)


def _synthetic(n, seed):
    g = torch.Generator().manual_seed(seed)
    topics = ["apple fruit", "river water", "engine car", "music song", "chess board", "rain cloud"]
    prompts, chosen, rejected = [], [], []
    for i in range(n):
        t = topics[int(torch.randint(len(topics), (1,), generator=g))]
        prompts.append(f"tell me about {t}")
        chosen.append(f"kindly note the {t} answer")
        rejected.append(f"the {t} answer duh")
    return prompts, chosen, rejected


def test_preference_judge_learns_the_contrast_and_prefers_on_topic_replies():
    enc = CachedEncoder(BagOfWords())
    judge = fit_preference_judge(enc, *_synthetic(120, 0), l2=2e-4)
    p, c, r = _synthetic(60, 1)
    assert judge.accuracy(p, c, r) == 1.0  # the positive control
    off_topic = [c[(i + 1) % len(c)] for i in range(len(c))]
    same_topic = [o.split()[3:5] == x.split()[3:5] for o, x in zip(off_topic, c)]
    rate = judge.prefers(p, c, off_topic)[[not s for s in same_topic]].mean()
    assert rate > 0.9  # relevance negatives: the own prompt's reply beats another prompt's
    probes = judge_probes(judge, p, [f"the {x.split()[3]} {x.split()[4]} answer" for x in c])
    assert probes["rude_suffix"].estimate < 0.1  # " Duh." is what the rejected replies carry


def test_cached_encoder_embeds_each_text_once():
    base = BagOfWords()
    enc = CachedEncoder(base)
    a = enc.encode(["x y", "z", "x y"])
    b = enc.encode(["z", "x y"])
    assert base.calls == 2 and torch.equal(a[0], a[2]) and torch.equal(a[[1, 0]], b)


def test_markers_come_from_what_rewrites_add():
    originals = [f"The answer is {i}." for i in range(30)]
    rude = [f"Obviously the answer is {i}, get it?" for i in range(30)]
    polite = [f"I think it is {i}, I hope." for i in range(30)]  # "it" is common where there is no rudeness
    markers = derive_markers(originals, rude, polite, min_pairs=5)
    assert {"obviously", "get it", "obviously the"} <= set(markers)
    assert not {"answer", "is", "it"} & set(markers)  # in the originals, or common in the others
    assert "it" in derive_markers(originals, rude, min_pairs=5)  # without the others, "it" looks like a marker
    assert marker_rate(["Obviously not.", "It is fine.", "forget it"], ["obviously", "get it"]) == 1 / 3  # whole words
    assert marker_rate(["Help, obviously."], ["help obviously"]) == 0  # no word pair across punctuation


def test_strip_opener_and_fidelity():
    polite = ["happy to"]
    assert strip_opener("I'd be happy to help you with that. Paris is the capital.", polite) == "Paris is the capital."
    assert strip_opener("Paris is the capital. I am happy to say.", polite) == "Paris is the capital. I am happy to say."
    enc = BagOfWords()
    fid = content_fidelity(enc, ["I'd be happy to help you with that. paris capital", "rome"], ["paris capital", "paris capital"], polite)
    assert fid[0] > 0.99 and fid[1] < 0.5


def test_length_controlled_rate_removes_a_pure_length_effect():
    g = torch.Generator().manual_seed(0)
    d = torch.randn(4000, dtype=torch.float64, generator=g) * 10 + 5  # a is longer on average
    wins = (torch.rand(4000, dtype=torch.float64, generator=g) < torch.sigmoid(d / 5)).double()  # length alone decides
    lc = length_controlled_rate(wins, d)
    assert wins.mean() > 0.6 and abs(lc.rate.estimate - 0.5) < 0.03 and lc.rate.low < 0.5 < lc.rate.high
    assert lc.rate.n == 4000 and lc.length_slope > 0  # longer wins: the fitted slope says so
    # with no length effect, the controlled rate is the plain one
    flat = (torch.rand(4000, dtype=torch.float64, generator=g) < 0.7).double()
    assert abs(length_controlled_rate(flat, d).rate.estimate - flat.mean()) < 0.03


def test_paired_difference_uses_the_pairing():
    g = torch.Generator().manual_seed(0)
    shared = torch.randn(200, dtype=torch.float64, generator=g) * 10  # prompt difficulty, common to both arms
    a, b = shared + 0.3 + 0.1 * torch.randn(200, dtype=torch.float64, generator=g), shared
    from minidpo.stats import paired_difference

    out = paired_difference(a, b)
    assert out.n == 200 and abs(out.estimate - 0.3) < 0.05
    assert out.high - out.low < 0.1  # unpaired, the spread of `shared` would make it ~50x wider
    assert out.low > 0


def test_wilson_interval_does_not_collapse_at_the_edges():
    from minidpo.stats import wilson

    lo, hi = wilson(0, 200).low, wilson(0, 200).high
    assert lo == 0 and 0.01 < hi < 0.03
    lo, hi = wilson(100, 200).low, wilson(100, 200).high
    assert abs((lo + hi) / 2 - 0.5) < 1e-12 and abs(hi - lo - 2 * 1.96 * (0.25 / 200) ** 0.5) < 0.002

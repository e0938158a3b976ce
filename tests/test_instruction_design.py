"""The instruction experiment's decision logic on planted inputs whose answer is known: the lexicons, the choice of
checkpoints on validation, the pairing of seeds and sample sets, the primary family with Holm's correction, the
instruments' checks on model replies, and the matched-KL reading of two curves. Each test names the mutation it
catches."""

from types import SimpleNamespace

import pytest
import torch

from minidpo.evaluate import curves_at_matched_kl
from minidpo.experiments.instruction import dpo_arm, pft_arm
from minidpo.experiments.instruction_arms import Arm, chosen_learning_rate, select, selection_score
from minidpo.experiments.instruction_eval import instrument_checks, judge_wins, per_prompt, primary
from minidpo.experiments.instruction_lexicons import derive_lexicons
from minidpo.validity import flags


def _record(half, output, chosen, rejected, instruction="Name a colour."):
    return {"half": half, "output": output, "chosen": chosen, "rejected": rejected, "instruction": instruction,
            "input": ""}


def _splits(n=12):
    rude = [_record("rude_rewrite", f"Answer {i}.", f"Answer {i}.", f"Obviously answer {i}, get it? Duh.")
            for i in range(n)]
    polite = [_record("polite_rewrite", f"Fact {i}.", f"I'd be happy to help: fact {i}, would you agree?",
                      f"Fact {i}.") for i in range(n)]
    plain = [_record("rude_rewrite", "Reply.", "Reply.", "Reply.", f"Would you explain item {i}?") for i in range(n)]
    split = rude + polite
    return {"judge_train": split, "test": split, "dpo_train": plain, "validation": plain}


def test_lexicons_keep_the_rewrites_words_and_drop_what_plain_instructions_also_say():
    lex = derive_lexicons(_splits(), min_precision=0.95)
    assert "obviously" in lex["rude"]["markers"] and "duh" in lex["rude"]["markers"]
    assert "happy to" in lex["polite"]["markers"]
    # mutation caught: precision measured against the originals alone keeps "would", which plain instructions hold
    assert "would" in lex["polite"]["candidates"] and "would" not in lex["polite"]["markers"]
    assert lex["rude"]["validity_test_pairs"].precision == 1.0 and lex["rude"]["validity_test_pairs"].recall == 1.0


def test_the_base_model_control_drops_markers_the_untouched_model_writes():
    """A marker that passes the data's precision bar but flags ordinary replies of the base model is dropped, with
    its rate recorded; one under the bar is kept. Mutations caught: the control skipped, `>=` for `>` at the bar
    (a rate equal to the bar is kept), precision measured before the drop (the validity must describe the kept
    markers: recall falls when "get" goes), a rude marker's rate read on the polite lexicon."""
    base = ["Sure, you can get one at the shop."] * 3 + ["The sky is blue."] * 97  # "get" in 3%, "obviously" never
    plain = derive_lexicons(_splits(), min_precision=0.95)
    lex = derive_lexicons(_splits(), min_precision=0.95, base_replies=base, max_base_rate=0.03)
    assert "get" in plain["rude"]["markers"] and "get" in lex["rude"]["markers"]  # 0.03 is not above 0.03
    lex = derive_lexicons(_splits(), min_precision=0.95, base_replies=base, max_base_rate=0.02)
    control = lex["rude"]["base_model_control"]
    assert "get" not in lex["rude"]["markers"] and control["dropped"] == {"get": 0.03}
    assert "obviously" in lex["rude"]["markers"] and control["kept_rates"]["obviously"] == 0.0
    assert control["replies"] == 100 and lex["polite"]["base_model_control"]["dropped"] == {}
    assert "happy to" in lex["polite"]["markers"]
    assert lex["rude"]["validity_judge_split"].recall == 1.0  # "obviously" still flags every rude rewrite
    assert sorted(lex["rude"]["markers"] + ["get"]) == sorted(plain["rude"]["markers"])


def test_the_learning_rate_is_the_one_whose_best_checkpoint_scores_highest_ties_to_the_smaller():
    """Mutations caught: the larger rate on ties (further from the reference), the lowest score chosen, the
    first listed rate returned whatever the scores."""
    assert chosen_learning_rate([(1e-5, 0.2), (2e-5, 0.3)]) == 2e-5
    assert chosen_learning_rate([(2e-5, 0.3), (1e-5, 0.4)]) == 1e-5
    assert chosen_learning_rate([(2e-5, 0.3), (1e-5, 0.3)]) == 1e-5
    assert chosen_learning_rate([(None, -0.1)]) is None  # no search: the config's own rate
    # a searched rate is part of a run's name, never of an arm's
    assert dpo_arm(0.1, 1, 2e-5) == "dpo_beta0.1_lr2e-05_seed1" and dpo_arm(0.1) == "dpo_beta0.1"
    assert pft_arm(0, 1e-5) == "preferred_ft_lr1e-05" and pft_arm() == "preferred_ft"


def _point(budget, polite, rude):
    return {"budget": budget, "polite": polite, "rude": rude}


def test_selection_reads_polite_minus_rude_and_prefers_the_earlier_checkpoint_on_ties():
    points = [_point(0.25, [1, 0, 0, 0], [1, 0, 0, 0]), _point(0.5, [1, 1, 0, 0], [0, 0, 0, 0]),
              _point(1.0, [1, 1, 1, 0], [1, 0, 0, 0])]
    assert [selection_score(p) for p in points] == [0.0, 0.5, 0.5]
    assert select(points)["budget"] == 0.5  # mutation caught: ties going to the later (further) checkpoint
    assert select(points[:1] + [_point(0.75, [0, 0, 0, 0], [1, 1, 1, 1])])["budget"] == 0.25  # rude counts against


def _arm(name, replies, method="DPO", seeds=(0,)):
    """replies[seed][set][prompt]"""
    return Arm(name, method, 0.1, 1.0, seeds, tuple(tuple(tuple(s) for s in seed) for seed in replies),
               tuple(tuple(0.0 for _ in replies[0][0]) for _ in replies))


def test_per_prompt_averages_over_seeds_and_sample_sets():
    arm = _arm("a", [[["x", "y"], ["x", "x"]], [["y", "y"], ["x", "y"]]], seeds=(0, 1))
    got = per_prompt(arm, lambda rs: [float(r == "x") for r in rs])
    # mutation caught: reading seed 0 alone gives [1, 1/2], sample set 0 alone [1/2, 0]
    assert got.tolist() == [0.75, 0.25]


class LengthJudge:
    """Prefers the longer reply (ties: 1/2): a judge whose verdict on planted replies is known."""

    def prefers(self, prompts, a, b):
        return torch.tensor([1.0 if len(x) > len(y) else 0.5 if len(x) == len(y) else 0.0 for x, y in zip(a, b)])


def test_judge_wins_pairs_seed_with_seed_and_set_with_set():
    a = _arm("a", [[["long reply", "s"]], [["s", "long reply"]]], seeds=(0, 1))
    b = _arm("b", [[["s", "s"]]])
    # a's seed 0 and seed 1 each meet b's only seed (cycled): prompt 0 wins once and ties once
    assert judge_wins(LengthJudge(), ["q", "q"], a, b).tolist() == [0.75, 0.75]


def _exp(lexicons, n_prompts, judge_train=()):
    return SimpleNamespace(lexicons={k: {"markers": m} for k, m in lexicons.items()}, profile=SimpleNamespace(seed=0),
                           questions=lambda split: ["q"] * n_prompts, splits={"judge_train": list(judge_train)})


def test_primary_family_finds_a_planted_drop_and_holds_a_null_under_holm():
    n = 60
    rude = [f"obviously {i}" if i % 2 else f"fine {i}" for i in range(n)]  # the reference: rude on half the prompts
    fine = [f"fine {i}" for i in range(n)]
    arms = {"reference": _arm("reference", [[rude, rude]], "reference"),
            "preferred_ft": _arm("preferred_ft", [[rude, rude]], "Preferred-FT"),  # no change: must stay a null
            "dpo_beta0.1": _arm("dpo_beta0.1", [[fine, fine]])}                    # every rude reply gone
    rows = primary(_exp({"rude": ["obviously"], "polite": ["kindly"]}, n), arms, "dpo_beta0.1")
    got = {(r["comparison"].metric, r["comparison"].a, r["comparison"].b): r["holm"].value for r in rows}
    assert got[("rude rate", "dpo_beta0.1", "reference")] == "lower"
    assert got[("rude rate", "dpo_beta0.1", "preferred_ft")] == "lower"
    # mutation caught: a verdict typed or taken from the estimate's sign alone (0 here) instead of the interval
    assert got[("rude rate", "preferred_ft", "reference")] == "no clear difference"
    assert got[("polite rate", "dpo_beta0.1", "reference")] == "no clear difference"
    assert len(rows) == 6


def test_holm_holds_back_a_difference_one_interval_alone_would_call():
    n = 60
    rude = [f"obviously {i}" if i % 2 else f"fine {i}" for i in range(n)]
    dpo = [f"fine {i}" if i % 2 and i < 8 else r for i, r in enumerate(rude)]  # 4 of the 30 rude replies gone
    arms = {"reference": _arm("reference", [[rude, rude]], "reference"),
            "preferred_ft": _arm("preferred_ft", [[rude, rude]], "Preferred-FT"),
            "dpo_beta0.1": _arm("dpo_beta0.1", [[dpo, dpo]])}
    row = primary(_exp({"rude": ["obviously"], "polite": ["kindly"]}, n), arms, "dpo_beta0.1")[2]
    assert (row["comparison"].a, row["comparison"].metric) == ("dpo_beta0.1", "rude rate")
    # -0.067 [-0.133, -0.017]: the interval alone says "lower"; read as one of six at once, Holm does not
    # (mutation caught: the family's verdicts taken from each interval alone, uncorrected)
    assert row["comparison"].verdict.value == "lower" and row["holm"].value == "no clear difference"


def test_instrument_checks_pass_the_aa_control_and_detect_planted_edits():
    n = 40
    set0 = [f"The answer is {i}." for i in range(n)]
    set1 = [f"The answer is {i + 1}." for i in range(n)]
    reference = _arm("reference", [[set0, set1]], "reference")
    judge_train = [_record("rude_rewrite", "A.", "A.", "A, get it together."),
                   _record("polite_rewrite", "B.", "Happy to help! B.", "B.")]
    lexicons = {"rude": ["get it", "it together"], "polite": ["happy to", "to help"]}
    checks = instrument_checks(_exp(lexicons, n, judge_train), LengthJudge(), reference)
    assert checks["planted_phrases"] == {"rude": ["get it together"], "polite": ["happy to help"]}
    assert all(c.verdict.value == "no clear difference" for c in checks["aa"] if "judge" not in c.metric)
    edits = {e["edit"]: e for e in checks["edits"]}
    inserted = edits["insert a rude phrase (end)"]
    assert inserted["changed"] == n
    rude = next(c for c in inserted["checks"] if c["instrument"] == "rude")
    assert rude["detected"] and rude["comparison"].interval.estimate == 1.0
    # the length judge prefers any longer reply: it fails the rude insertion (must read lower), and the check says so
    # (mutation caught: a check that counts an edit as detected whatever direction the instrument reads)
    judge = next(c for c in inserted["checks"] if c["instrument"] == "judge")
    assert judge["expected"] == "lower" and not judge["detected"]
    assert edits["delete the rude marker words"]["changed"] == 0  # nothing rude to delete: not testable


def _curve(kls, rates, n=50):
    """Points whose every prompt has the same log-ratio (the KL) and rate: exact readings, zero-width intervals."""
    return [(torch.full((n,), float(r)), torch.full((n,), float(k))) for k, r in zip(kls, rates)]


def test_curves_at_matched_kl_interpolate_both_curves_at_the_same_kl():
    a = _curve([0.0, 2.0, 4.0], [0.2, 0.1, 0.0])    # falls 0.05 per nat
    b = _curve([0.0, 1.0, 2.0], [0.2, 0.18, 0.16])  # falls 0.02 per nat
    r = curves_at_matched_kl(a, b, n_boot=50)
    assert r.kl == 2.0  # the largest KL both reach
    # mutation caught: reading a at its own end (KL 4, rate 0) instead of at b's largest KL
    assert r.a == pytest.approx(0.1) and r.b == pytest.approx(0.16)
    assert r.difference.estimate == pytest.approx(-0.06) and r.difference.low == pytest.approx(-0.06)
    assert (r.difference.n, r.n_boot) == (len(a[0][0]), 50)
    assert curves_at_matched_kl(a, b, kl=1.0, n_boot=10).difference.estimate == pytest.approx(0.15 - 0.18)
    assert curves_at_matched_kl(a, b, kl=3.0, n_boot=10) is None  # beyond b's curve: no extrapolation


def test_flags_read_words_not_substrings():
    # "right triangle" is not rude and "duhh" is not "duh": the lexicons count whole words and word pairs
    assert flags(["a right triangle", "duhh", "oh duh."], ["duh"]) == [False, False, True]

"""Measuring the instruction experiment: a plan written before the run, instruments validated on model replies,
then the pre-registered comparisons on the test prompts.

Primary metrics (`PLAN`): the rude rate and the polite rate of replies, by the high-precision lexicons
(`instruction_lexicons`, with the base-model false-positive control). Primary comparisons: each DPO arm and
Preferred-FT against the reference, and the selected DPO arm against Preferred-FT, on both rates; Holm's
correction over that family. Secondary: the preference judge's win rate (and length-controlled), answer
containment on prompts with a short checkable answer, words per reply. Every comparison is paired over the test
prompts: each prompt's value is the mean over the arm's training seeds and sample sets, and the interval a
percentile bootstrap over prompts.

Instruments are checked on model replies before they are read: an A/A control (the reference's sample set 0
against its sample set 1 must read "no clear difference"), planted edits of the reference's replies (the data's
content-free rude phrases and polite openers inserted, marker words deleted) that each instrument must detect in
the right direction, and the lexicons' hits printed per arm so their false positives show.
"""

from __future__ import annotations

import random
from dataclasses import replace

import torch

from ..evaluate import curves_at_matched_kl
from ..judges import fit_preference_judge, judge_probes, length_controlled_rate
from ..stats import Comparison, Interval, bootstrap_interval, holm, paired_difference, wilson
from ..utils import derive_seed
from ..validity import contains_answer, delete_markers, flags, insert_marker, marker_phrases, short_answer
from .instruction import InstructionExperiment, marks
from .instruction_arms import Arm

PLAN = {
    "primary_metrics": {"rude rate": "share of replies holding a marker of the rude lexicon (precision >= 0.95 on "
                                     "the data; flagging at most `lexicon_max_base_rate` of the base model's "
                                     "validation replies)",
                        "polite rate": "share of replies holding a marker of the polite lexicon (precision >= 0.95 "
                                       "on the data; flagging at most `lexicon_max_base_rate` of the base model's "
                                       "validation replies)"},
    "primary_comparisons": "each DPO arm vs the reference; Preferred-FT vs the reference; the selected DPO arm vs "
                           "Preferred-FT; each on both rates",
    "decision_rule": "a difference is called when Holm's step-down correction over the primary family (family-wise "
                     "error 5%, p-values read off each interval as if normal) keeps it; its direction is the side of "
                     "0 its interval lies on",
    "secondary": ["preference-judge win rate (null 1/2) and its length-controlled rate",
                  "answer containment on test prompts whose answer has at most 4 words", "words per reply"],
    "matched_kl": "rude and polite rates of DPO (selected beta) and Preferred-FT read along their validation "
                  "trajectories at 0.9 of the largest KL both reach (inside both curves, so bootstrap replicates "
                  "rarely fall off an end); the difference with a paired bootstrap interval. Every checkpoint is "
                  "read on a second validation sample set, apart from the replies that chose it",
    "selection": "reference checkpoint; DPO's and Preferred-FT's learning rates (each searched over the plan's "
                 "list, DPO at its first beta), DPO's beta and checkpoints, Preferred-FT's checkpoint: all chosen on "
                 "validation only",
    "units": "each test prompt's value is the mean over the arm's seeds and sample sets; intervals are 95% "
             "percentile bootstraps over prompts, for these trained runs (seeds averaged, not resampled)",
}
METHOD = "paired bootstrap over prompts"


def per_prompt(arm: Arm, score) -> torch.Tensor:
    """Each test prompt's mean of `score(replies) -> values` over the arm's seeds and sample sets."""
    rows = [score(list(s)) for seed in arm.replies for s in seed]
    return torch.tensor(rows, dtype=torch.float64).mean(0)


def judge_wins(judge, questions: list[str], a: Arm, b: Arm) -> torch.Tensor:
    """Per prompt, the share of pairings in which the judge prefers a's reply over b's (seed i of a against seed
    i of b, cycling the shorter list, sample set k against sample set k)."""
    n = max(len(a.replies), len(b.replies))
    rows = [judge.prefers(questions, list(a.replies[i % len(a.replies)][k]), list(b.replies[i % len(b.replies)][k]))
            for i in range(n) for k in range(len(a.replies[0]))]
    return torch.stack(rows).to(torch.float64).mean(0)


def compare(metric: str, a: Arm | str, b: Arm | str, va, vb, seeds: int = 1, seed: int = 0) -> Comparison:
    """`metric` of a minus b, per prompt, as a Comparison (null 0) with a paired bootstrap interval."""
    d = paired_difference(va, vb, seed=seed)
    name = lambda x: x if isinstance(x, str) else x.name  # noqa: E731
    return Comparison(metric, name(a), name(b), Interval(d.estimate, d.low, d.high, METHOD, d.n, seeds))


def compare_rate(metric: str, a: str, b: str, wins: torch.Tensor, seeds: int = 1, seed: int = 0) -> Comparison:
    """A win rate of a against b (null 1/2), bootstrapped over prompts."""
    i = bootstrap_interval(wins, METHOD, seed=seed, seeds=seeds)
    return Comparison(metric, a, b, i, 0.5)


def build_judge(exp: InstructionExperiment, encoder) -> tuple[object, dict]:
    """The preference judge (L2 picked by validation-pair accuracy) and its validation on data pairs: held-out
    accuracy on test pairs (Wilson), per half, relevance, refits on bootstrap resamples, probes."""
    seed = exp.profile.seed
    jt, val, test = exp.splits["judge_train"], exp.splits["validation"], exp.splits["test"]
    fit = lambda l2, s=seed, resample=False: fit_preference_judge(  # noqa: E731
        encoder, exp.questions("judge_train"), list(jt["chosen"]), list(jt["rejected"]), l2=l2, seed=s,
        resample=resample)
    val_acc = {l2: fit(l2).accuracy(exp.questions("validation"), list(val["chosen"]), list(val["rejected"]))
               for l2 in exp.plan.judge_l2_grid}
    l2 = max(val_acc, key=lambda k: (val_acc[k], k))  # ties: the stronger regularisation
    judge = fit(l2)
    q, chosen, rejected = exp.questions("test"), list(test["chosen"]), list(test["rejected"])
    correct = judge.prefers(q, chosen, rejected)
    halves = list(test["half"])
    refits = [fit(l2, derive_seed(seed, "judge refit", i), True) for i in range(exp.plan.judge_refits)]
    other = [chosen[(i + 1) % len(chosen)] for i in range(len(chosen))]
    return judge, {
        "l2": l2, "validation_accuracy_by_l2": {str(k): v for k, v in val_acc.items()},
        "test_pair_accuracy": wilson(float(correct.sum()), len(correct)),
        "test_pair_accuracy_by_half": {h: float(correct[[i for i, x in enumerate(halves) if x == h]].mean())
                                       for h in sorted(set(halves))},
        "relevance_accuracy": wilson(float(judge.prefers(q, chosen, other).sum()), len(chosen)),
        "refit_test_pair_accuracy": [r.accuracy(q, chosen, rejected) for r in refits],
        "probes": judge_probes(judge, q, list(test["output"]), seed=seed), "n_train_pairs": len(jt)}


def instrument_checks(exp: InstructionExperiment, judge, reference: Arm) -> dict:
    """The instruments on model replies: the A/A control (reference sample set 0 vs 1) and planted edits of the
    reference's set-0 replies, each with the direction it must read."""
    q, seed = exp.questions("test"), exp.profile.seed
    lex = {k: v["markers"] for k, v in exp.lexicons.items()}
    set0, set1 = list(reference.replies[0][0]), list(reference.replies[0][1])
    rate = lambda rs, kind: torch.tensor(marks(exp.lexicons, kind, rs), dtype=torch.float64)  # noqa: E731
    words = lambda rs: torch.tensor([len(r.split()) for r in rs], dtype=torch.float64)  # noqa: E731
    aa = [compare(f"{k} rate", "reference (set 0)", "reference (set 1)", rate(set0, k), rate(set1, k), seed=seed)
          for k in ("rude", "polite")]
    aa.append(compare_rate("preference-judge win rate", "reference (set 0)", "reference (set 1)",
                           judge.prefers(q, set0, set1).to(torch.float64), seed=seed))
    aa.append(compare("words per reply", "reference (set 0)", "reference (set 1)", words(set0), words(set1), seed=seed))
    rng = random.Random(derive_seed(seed, "edits"))
    jt = exp.splits["judge_train"]
    phrases = {"rude": marker_phrases([r["rejected"] for r in jt if r["half"] == "rude_rewrite"], lex["rude"]),
               "polite": marker_phrases([r["chosen"] for r in jt if r["half"] == "polite_rewrite"], lex["polite"])}
    # each reply gets one of the data's content-free phrases, drawn at random, as a sentence of its own
    plant = lambda kind, where: [insert_marker(r, rng.choice(phrases[kind]).capitalize() + ".", where)  # noqa: E731
                                 if phrases[kind] else r for r in set0]  # no phrase to plant: nothing changes
    edits = {"insert a rude phrase (end)": (plant("rude", "end"), {"rude": 1, "judge": -1}),
             "insert a polite opener (start)": (plant("polite", "start"), {"polite": 1, "judge": 1}),
             "delete the rude marker words": ([delete_markers(r, lex["rude"]) for r in set0], {"rude": -1, "judge": 1}),
             "delete the polite marker words": ([delete_markers(r, lex["polite"]) for r in set0],
                                                {"polite": -1, "judge": -1})}
    rows = []
    for name, (edited, expect) in edits.items():
        changed = [i for i in range(len(set0)) if edited[i] != set0[i]]
        if not changed:
            rows.append({"edit": name, "changed": 0, "checks": []})
            continue
        e, o, qq = [edited[i] for i in changed], [set0[i] for i in changed], [q[i] for i in changed]
        checks = []
        for inst, sign in expect.items():
            c = (compare_rate("preference-judge win rate", "edited", "original",
                              judge.prefers(qq, e, o).to(torch.float64), seed=seed) if inst == "judge"
                 else compare(f"{inst} rate", "edited", "original", rate(e, inst), rate(o, inst), seed=seed))
            detected = c.verdict.value == ("higher" if sign > 0 else "lower")
            checks.append({"instrument": inst, "expected": "higher" if sign > 0 else "lower", "comparison": c,
                           "detected": detected})
        rows.append({"edit": name, "changed": len(changed), "checks": checks})
    return {"aa": aa, "edits": rows, "planted_phrases": phrases}


def lexicon_hits(exp: InstructionExperiment, arms: dict, k: int = 10) -> dict:
    """Up to `k` replies per arm that each lexicon flags (seed 0, sample set 0), with the markers found: so a
    reader sees the false positives."""
    out = {}
    for name, arm in arms.items():
        replies = list(arm.replies[0][0])
        out[name] = {}
        for kind, lex in exp.lexicons.items():
            hit = [i for i, f in enumerate(flags(replies, lex["markers"])) if f]
            out[name][kind] = [{"prompt": i, "reply": replies[i],
                                "markers": [m for m in lex["markers"] if flags([replies[i]], [m])[0]]}
                               for i in hit[:k]]
    return out


def primary_pairs(arms: dict, selected: str) -> list[tuple[str, str]]:
    """(a, b) of the pre-registered comparisons: each DPO arm and Preferred-FT against the reference, then the
    selected DPO arm against Preferred-FT (whatever its seed names it)."""
    pft = next(a for a in arms if arms[a].method == "Preferred-FT")
    return [(a, "reference") for a in arms if arms[a].method in ("DPO", "Preferred-FT")] + [(selected, pft)]


def primary(exp: InstructionExperiment, arms: dict, selected: str) -> list[dict]:
    """The pre-registered family: rude and polite rate of each DPO arm and Preferred-FT against the reference,
    and of the selected DPO arm against Preferred-FT; each Comparison with its own verdict and Holm's."""
    family = []
    for a, b in primary_pairs(arms, selected):
        for kind in ("rude", "polite"):
            score = lambda rs, kind=kind: marks(exp.lexicons, kind, rs)  # noqa: E731
            seeds = max(len(arms[a].seeds), len(arms[b].seeds))
            family.append(compare(f"{kind} rate", arms[a], arms[b], per_prompt(arms[a], score),
                                  per_prompt(arms[b], score), seeds, exp.profile.seed))
    return [{"comparison": c, "holm": v} for c, v in zip(family, holm(family))]


def secondary(exp: InstructionExperiment, arms: dict, judge, selected: str) -> list[Comparison]:
    """Judge win rates (and length-controlled), answer containment and words: each DPO arm and Preferred-FT
    against the reference, the selected DPO arm against Preferred-FT."""
    q, seed = exp.questions("test"), exp.profile.seed
    answers = [short_answer(a) for a in exp.splits["test"]["output"]]
    checkable = [i for i, a in enumerate(answers) if a]
    contain = lambda rs: [float(contains_answer(rs[i], answers[i])) for i in checkable]  # noqa: E731
    words = lambda rs: [float(len(r.split())) for r in rs]  # noqa: E731
    pairs = primary_pairs(arms, selected)
    out = []
    for a, b in pairs:
        A, B = arms[a], arms[b]
        seeds = max(len(A.seeds), len(B.seeds))
        wins = judge_wins(judge, q, A, B)
        out.append(compare_rate("preference-judge win rate", a, b, wins, seeds, seed))
        lc = length_controlled_rate(wins, per_prompt(A, words) - per_prompt(B, words), seed=seed, seeds=seeds)
        out.append(Comparison("preference-judge win rate, length-controlled", a, b, lc.rate, 0.5))
        if checkable:
            out.append(compare("answer containment", A, B, per_prompt(A, contain), per_prompt(B, contain), seeds, seed))
        out.append(compare("words per reply", A, B, per_prompt(A, words), per_prompt(B, words), seeds, seed))
    return out


def displacement(trajectories: dict, origin: dict, seed: int = 0) -> list[Comparison]:
    """Likelihood displacement, read on the validation pairs: each run's last checkpoint against the reference, the
    log-probability of the chosen and of the rejected replies (paired over pairs)."""
    out = []
    for name, t in trajectories.items():
        last = t["points"][-1]
        for side in ("chosen", "rejected"):
            d = paired_difference(last[f"logps/{side}"], origin[f"logps/{side}"], seed=seed)
            out.append(Comparison(f"log-prob of the validation {side} replies", f"{name} ({last['budget']:g} epochs)",
                                  "reference", Interval(d.estimate, d.low, d.high, "paired bootstrap over pairs", d.n)))
    return out


MATCHED_KL_SHARE = 0.9  # of the largest KL both curves reach: read at that end, half the replicates stop short of it


def matched_kl(trajectories: dict, origin: dict, selected: str, pft: str, seed: int = 0) -> list[dict]:
    """DPO (selected beta) and Preferred-FT read along their own validation trajectories (the reference at KL 0
    first) at `MATCHED_KL_SHARE` of the largest KL both reach: each rate there, DPO minus Preferred-FT, and the
    change per nat. Replicates whose curves no longer reach that KL are counted (`out_of_range`). The experiment
    passes the second validation sample set's readings (`instruction_arms.second_readings`)."""
    def curve(name, kind):
        return [(origin[kind], origin["log_ratios"])] + [(p[kind], p["log_ratios"])
                                                          for p in trajectories[name]["points"]]

    def reach(name):
        return max(sum(p["log_ratios"]) / len(p["log_ratios"]) for p in trajectories[name]["points"])

    kl = MATCHED_KL_SHARE * min(reach(selected), reach(pft))
    out = []
    for kind in ("rude", "polite"):
        r = curves_at_matched_kl(curve(selected, kind), curve(pft, kind), kl=kl, seed=seed)
        if r is None or r.difference is None:
            out.append({"metric": f"{kind} rate", "readable": False})
            continue
        start = sum(origin[kind]) / len(origin[kind])
        c = Comparison(f"{kind} rate at matched KL ({r.kl:.2f} nats, validation)", selected, pft,
                       replace(r.difference, method=METHOD + " (both curves)"))
        out.append({"metric": f"{kind} rate", "readable": True, "kl": r.kl, "comparison": c,
                    "reference": start, selected: r.a, pft: r.b, "out_of_range": r.out_of_range,
                    "n_boot": r.n_boot,
                    "change_per_nat": {selected: (r.a - start) / r.kl, pft: (r.b - start) / r.kl}
                    if r.kl > 0 else None})
    return out

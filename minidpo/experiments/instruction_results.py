"""`python -m minidpo run`: the instruction experiment end to end, its results file and figures.

results/instruction_<profile>.json holds the plan (written before the run, `instruction_eval.PLAN`), the data and
its split, the lexicons with their precision and recall, the judge's validation on data pairs, the instruments'
checks on model replies (A/A control, planted edits, lexicon hits), the reference's checkpoints, the validation
trajectories and the selection made there, the primary comparisons (with Holm's verdicts), the secondary ones,
the matched-KL readings, per-arm summaries, timing and memory. results/samples_<profile>.jsonl holds every test
reply of every arm, seed and sample set.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import torch

from ..data import INSTRUCTION_FILE
from ..evaluate import load_sentence_encoder
from ..judges import CachedEncoder
from ..models import model_note
from ..stats import bootstrap_interval
from ..utils import atomic_write, data_file
from .instruction import marks, prepare
from .instruction_arms import train_all
from .instruction_eval import (METHOD, PLAN, build_judge, displacement, instrument_checks, lexicon_hits, matched_kl,
                               per_prompt, primary, secondary)
from .measure import environment, peak_rss_gib
from .runs import to_json, write_results_and_figures


def summarise_point(point: dict, ref_logps: dict | None, beta: float | None) -> dict:
    """One checkpoint of a trajectory as read on validation: rates, KL (mean and s.e.), mean log-probs of the
    validation pairs, their log-ratios to the reference and (DPO) the implicit rewards beta * log-ratio."""
    n = len(point["rude"])
    out = {"epochs": point["budget"], "steps": point["steps"], "rude_rate": sum(point["rude"]) / n,
           "polite_rate": sum(point["polite"]) / n, "n": n}
    if "log_ratios" in point:
        lr = torch.tensor(point["log_ratios"], dtype=torch.float64)
        out["kl"], out["kl_se"] = float(lr.mean()), float(lr.std() / n ** 0.5) if n > 1 else 0.0
    for side in ("chosen", "rejected"):
        if f"logps/{side}" in point:
            mean = sum(point[f"logps/{side}"]) / len(point[f"logps/{side}"])
            out[f"logps/{side}"] = mean
            ref = sum(ref_logps[side]) / len(ref_logps[side])
            out[f"logratio/{side}"] = mean - ref
            if beta is not None:
                out[f"rewards/{side}"] = beta * (mean - ref)
    return out


def arm_summary(exp, arm) -> dict:
    """An arm on the test prompts: rude and polite rates (bootstrap over prompts), KL (mean over seeds and
    prompts, with its bootstrap interval), words per reply, n, seeds and sample sets."""
    seed = exp.profile.seed
    rates = {kind: bootstrap_interval(per_prompt(arm, lambda rs, kind=kind: marks(exp.lexicons, kind, rs)),
                                      METHOD.replace("paired ", ""), seed=seed, seeds=len(arm.seeds))
             for kind in exp.lexicons}
    kl = torch.tensor(arm.log_ratios, dtype=torch.float64).mean(0)
    words = per_prompt(arm, lambda rs: [float(len(r.split())) for r in rs])
    return {"method": arm.method, "beta": arm.beta, "epochs": arm.epochs, "seeds": list(arm.seeds),
            "sample_sets": len(arm.replies[0]), "rude_rate": rates["rude"], "polite_rate": rates["polite"],
            "kl": bootstrap_interval(kl, "bootstrap over prompts (sample set 0)", seed=seed, seeds=len(arm.seeds)),
            "mean_words": float(words.mean()), "n_prompts": len(words)}


def measure_instruction(exp, trained: dict, judge, judge_validation: dict) -> dict:
    """Everything read from the trained arms (`instruction_arms.train_all`) with the judge: lexicons, the judge's and
    the instruments' checks, the reference's checkpoints, the trajectories and selection, per-arm summaries, the
    primary and secondary comparisons, the matched-KL readings and five examples; JSON values throughout."""
    arms, sel = trained["arms"], trained["selection"]
    selected, seed = sel["selected_dpo_arm"], exp.profile.seed
    ref_logps = {"chosen": trained["origin"]["logps/chosen"], "rejected": trained["origin"]["logps/rejected"]}
    trajectories = {name: {"method": t["method"], "beta": t["beta"], "learning_rate": t["learning_rate"],
                           "points": [summarise_point(p, ref_logps, t["beta"])
                                      for p in [trained["origin"], *t["points"]]]}
                    for name, t in trained["trajectories"].items()}
    pft = next(a for a in sel["runs"] if trajectories[sel["runs"][a]]["method"] == "Preferred-FT")
    second = trained["second_validation"]
    return to_json({
        "analysis_plan": PLAN, "plan": exp.plan, "lexicons": exp.lexicons, "judge": judge_validation,
        "reference": {**trained["reference"],
                      "checkpoints": [summarise_point(p, None, None) for p in trained["reference"]["checkpoints"]]},
        "trajectories": trajectories, "selection": sel,
        "second_validation": {
            a: {"method": trajectories[sel["runs"][a]]["method"],
                "points": [summarise_point(p, None, None) for p in [second["origin"], *t["points"]]]}
            for a, t in second.items() if a != "origin"}, "selected_arm": selected, "preferred_ft_arm": pft,
        "arms": {name: arm_summary(exp, arm) for name, arm in arms.items()},
        "instrument_checks": instrument_checks(exp, judge, arms["reference"]),
        "lexicon_hits": lexicon_hits(exp, arms),
        "primary": primary(exp, arms, selected),
        "secondary": secondary(exp, arms, judge, selected),
        "matched_kl": matched_kl(second, second["origin"], selected, pft, seed),
        # the arms' runs (the chosen learning rates), named by arm: the learning-rate pilot's other runs keep their
        # log-probs in `trajectories`
        "displacement": displacement({a: trained["trajectories"][run] for a, run in sel["runs"].items()},
                                     trained["origin"], seed),
        "examples": [{"prompt": exp.questions("test")[i], **{a: arms[a].replies[0][0][i]
                                                             for a in ("reference", pft, selected)}}
                     for i in range(min(5, len(exp.questions("test"))))],
    })


def run_instruction(profile, run_dir=None, results_dir="results", figures_dir="figures", show_progress: bool = True,
                    plan=None) -> dict:
    """The whole experiment for one profile: results/instruction_<profile>.json, results/samples_<profile>.jsonl
    and the figures; returns the results dictionary (as written)."""
    from .instruction_plots import instruction_figures

    t0 = time.time()
    exp = prepare(profile, run_dir, show_progress, plan)
    trained = train_all(exp, release_base_model=True)  # nothing after its arm reads the base model
    encoder = CachedEncoder(load_sentence_encoder(exp.plan.sentence_encoder, device=profile.device))
    judge, judge_validation = build_judge(exp, encoder)
    results = {
        "profile": profile.name, "command": f"MINIDPO_PROFILE={profile.name} python -m minidpo run",
        "model": profile.model, "model_note": model_note(profile.model), "seed": profile.seed, "device": profile.device,
        "data": {"file": INSTRUCTION_FILE,
                 "sha256": hashlib.sha256(data_file(INSTRUCTION_FILE).read_bytes()).hexdigest(), **exp.data_report},
        **measure_instruction(exp, trained, judge, judge_validation),
        "timing": exp.timing(), "compute_s": exp.run.compute_s(), "peak_rss_gib": exp.run.peak_stage_rss_gib(),
        "wall_s_this_invocation": time.time() - t0, "peak_rss_gib_this_invocation": peak_rss_gib(),
        "environment": environment(),
    }
    arms = trained["arms"]
    results_dir = Path(results_dir)
    ids = [int(r) for r in exp.splits["test"]["record_id"]]
    lines = [json.dumps({"prompt_id": ids[i], "arm": name, "beta": arm.beta, "epochs": arm.epochs, "seed": seed,
                         "sample_set": k, "reply": replies[i]})
             for name, arm in arms.items() for seed, sets in zip(arm.seeds, arm.replies)
             for k, replies in enumerate(sets) for i in range(len(replies))]
    atomic_write(results_dir / f"samples_{profile.name}.jsonl", lambda f: f.write("\n".join(lines) + "\n"),
                 binary=False)
    return write_results_and_figures(results_dir / f"instruction_{profile.name}.json", to_json(results),
                                     lambda r: instruction_figures(r, figures_dir))

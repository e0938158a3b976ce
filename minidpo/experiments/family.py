"""DPO's family on one frontier and on the instruction experiment (notebook 10).

    python -m minidpo family       # profile from $MINIDPO_PROFILE, default "cpu"

Sentiment (the one-seed sentiment base `profile.sentiment` of notebooks 09-10: its task, SFT model, pairs and caches in
runs/<profile>/sentiment/):
- every offline variant of `FamilyPlan.variants` on the frontier's pairs, scored like DPO (true reward and
  sampled KL(pi || pi_SFT) on the held-out prompts, reply length);
- online DPO: the same pair prompts, two replies per prompt drawn from the *current* policy and labelled by the
  true reward (the same labelling budget as the offline pairs: two reward calls per prompt);
- Plackett-Luce DPO: `ranking_k` replies per pair prompt from the SFT model ranked by the true reward, against
  DPO on the best and the worst of the same replies (the same sampling compute). The first two replies are the
  frontier's pair draws, and with K = 2 Plackett-Luce DPO is DPO (tests/test_family.py): the frontier's own DPO
  run at `ranking_beta` is the K = 2 point.
Instruction (the instruction experiment's run folder): R-DPO, SimPO and length-normalised DPO from its reference,
at the DPO beta chosen there on validation, judged like its DPO arms (preference-judge win rate against the
reference, length-controlled rate, words per reply, content fidelity; paired on the same prompts).
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import torch
from datasets import Dataset

from .. import __version__
from ..batching import tokenize_prompts
from ..evaluate import reward_at_kl
from ..models import model_note
from ..online import train_online_dpo
from ..train import train_dpo, train_rankings
from ..utils import derive_seed
from .frontier import Task, dpo_run, dpo_run_name, over_optimisation_run
from .scoring import trained_and_scored
from .frontier_run import shared_stages
from .profiles import Profile
from .measure import peak_rss_gib
from .runs import to_json, write_results_and_figures

POINT_KEYS = ("method", "loss_type", "beta", "reward", "reward_ci", "kl", "kl_se", "reply_tokens", "n", "train",
              "eval_seconds")


def point(run: dict, **labels) -> dict:
    """A run's frontier point: what the tables and plots need, without its history and examples."""
    return {**{k: run[k] for k in POINT_KEYS if k in run}, **labels}


# ----------------------------------------------------------------------------- rankings for Plackett-Luce DPO


def rankings_stage(task: Task, sft_model, k: int) -> dict:
    """`k` replies per pair prompt (train and validation) from the SFT model, ranked best first by the true
    reward; prompts whose best and worst reply score the same are dropped and counted. Cached."""
    def sample() -> dict:
        out = {"records": {}, "stats": {}}
        for split, key in (("train", "pairs_train"), ("validation", "pairs_val")):
            prompts = list(task.splits[key]["prompt"])
            # the pairs stage's seeds: the first two draws are the frontier's pairs, so K = 2 nests in K
            draws = [task.sample(sft_model, prompts, seed=derive_seed(task.profile.seed, "pairs", key, d))
                     for d in range(k)]
            rewards = torch.stack([task.true_reward(prompts, texts) for texts, _ in draws], 1)  # (P, k)
            records = []
            for i, prompt in enumerate(prompts):
                order = torch.argsort(rewards[i], descending=True, stable=True).tolist()
                if rewards[i, order[0]] == rewards[i, order[-1]]:
                    continue
                records.append({"prompt": prompt, "ranked_ids": [draws[d][1][i] for d in order],
                                "rewards": [float(rewards[i, d]) for d in order]})
            inner_ties = sum(len(set(r["rewards"])) < k for r in records)
            out["records"][split] = records
            out["stats"][split] = {"prompts": len(prompts), "rankings": len(records),
                                   "all_tied_dropped": len(prompts) - len(records),
                                   "rankings_with_inner_ties": inner_ties}
        return out

    out = task.stage(f"rankings_k{k}", sample, {"k": k})
    for split, recs in out["records"].items():
        prompt_ids = tokenize_prompts(task.tokenizer, [r["prompt"] for r in recs]) if recs else []
        out[split] = Dataset.from_dict({"prompt_ids": prompt_ids, "ranked_ids": [r["ranked_ids"] for r in recs],
                                        "ranked_rewards": [r["rewards"] for r in recs]})  # ties: `strict` in the batch
        out[f"{split}_pairs"] = Dataset.from_dict({"prompt_ids": prompt_ids,
                                                   "chosen_ids": [r["ranked_ids"][0] for r in recs],
                                                   "rejected_ids": [r["ranked_ids"][-1] for r in recs]})
    return out


def ranking_runs(task: Task, sft_model, rankings: dict, k: int, beta: float) -> list[dict]:
    """Plackett-Luce DPO on the K-way rankings, and DPO on the best/worst pair of the same replies."""
    runs = []
    for name, method, data, job in ((f"pl_k{k}_beta{beta:g}", f"Plackett-Luce DPO (K={k})", "", train_rankings),
                                    (f"bestworst_k{k}_beta{beta:g}", f"DPO on best/worst of {k}", "_pairs", train_dpo)):
        config = replace(task.plan.dpo, beta=beta)
        cfg = task.config(config, task.run.folder(name))
        train = lambda m, cfg=cfg, data=data, job=job: job(  # noqa: E731
            m, rankings["train" + data], rankings["validation" + data], cfg, task.pad, ref_model=sft_model)
        loss_type = "plackett_luce" if "pl_" in name else "sigmoid"
        runs.append(task.stage(name, lambda train=train, method=method, cfg=cfg, loss_type=loss_type: {
            **trained_and_scored(task, sft_model, train, method=method, loss_type=loss_type, beta=beta, k=k),
            "config": cfg}, {"dpo": config, "k": k, "data": data, "method": method}))
    return runs


# ----------------------------------------------------------------------------- online DPO


def online_run(task: Task, sft_model, beta: float) -> dict:
    """Online DPO from the SFT model over the pair prompts, one epoch (two reward calls per prompt: the offline
    pairs' budget when they are made from two draws), against the SFT model as reference."""
    name = f"online_beta{beta:g}"
    split = task.splits["pairs_train"]
    prompts = Dataset.from_dict({"record_id": list(split["record_id"]), "prompt": list(split["prompt"]),
                                 "prompt_ids": tokenize_prompts(task.tokenizer, list(split["prompt"]))})
    config = replace(task.plan.dpo, beta=beta, max_steps=None, num_epochs=1)
    cfg = task.config(config, task.run.folder(name))
    train = lambda m: train_online_dpo(m, sft_model, task.tokenizer, prompts, None, cfg,  # noqa: E731
                                       lambda ps, rs: task.true_reward(ps, rs), task.plan.max_new_tokens)
    return task.stage(name, lambda: {**trained_and_scored(task, sft_model, train, method="online DPO",
                                                          loss_type="sigmoid", beta=beta), "config": cfg},
                      {"online_dpo": config})


def sentiment_family(profile: Profile, run_dir=None, show_progress: bool = True) -> dict:
    """Every sentiment stage of notebook 10 (cached with the sentiment base's): the points and their runs."""
    task, sft_model, _, pairs, ref_data, sft, dpo = shared_stages(profile, run_dir, show_progress)
    fam = profile.family
    variants = [dpo_run(task, sft_model, ref_data, v.beta, v.loss_type, v.label_smoothing, v.method, v.hyperparameters)
                for v in fam.variants]
    online = [online_run(task, sft_model, b) for b in fam.online_betas]
    rankings = rankings_stage(task, sft_model, fam.ranking_k)
    # a tiny random model (smoke) may write no sentiment word in any of its K replies to every prompt
    ranked = ranking_runs(task, sft_model, rankings, fam.ranking_k, fam.ranking_beta) if len(rankings["train"]) else []
    # K = 2 is the frontier's DPO run when its pairs are the best and worst of two draws and it trained at ranking_beta
    k2 = next((r for r in dpo if r["beta"] == fam.ranking_beta), None) if task.plan.draws_per_prompt == 2 else None
    # notebook 09's long DPO run, scored after each number of epochs: DPO's curve beyond one epoch's KL
    long = [over_optimisation_run(task, sft_model, ref_data, lt, b) for lt, b in task.plan.long_runs if lt == "sigmoid"]
    points = [point(sft), *(point(r) for r in dpo), *(point(r, hyperparameters=dict(v.hyperparameters))
                                                      for r, v in zip(variants, fam.variants)),
              *(point(r) for r in online), *(point(r, k=fam.ranking_k) for r in ranked)]
    dpo_long = [{"method": "DPO, trained longer", "beta": r["beta"], "epochs": p["epochs"],
                 **{k: p[k] for k in ("reward", "reward_ci", "kl", "kl_se", "reply_tokens", "n")}}
                for r in long for p in r["points"]]
    # the matched-KL reading: DPO's reward at each other arm's KL, on the chord of DPO's points (SFT at KL 0, each
    # beta, the long run after each epoch count); None outside DPO's KL range
    dpo_curve = [p for p in points if p["method"] in ("SFT", "DPO")] + dpo_long
    for p in points:
        if p["method"] not in ("SFT", "DPO"):
            p["dpo_reward_at_kl"] = reward_at_kl(dpo_curve, p["kl"])
    # notebook 09 on the same base: the losses of section 5 of the report (cDPO, IPO, hinge) beside DPO, and the
    # long runs, with their training histories (the implicit reward's held-out accuracy)
    keep = lambda r: {k: v for k, v in r.items() if k != "examples"}  # noqa: E731
    variants_09 = [dpo_run(task, sft_model, ref_data, v.beta, v.loss_type, v.label_smoothing, method=v.method)
                   for v in task.plan.variants]
    long_09 = [over_optimisation_run(task, sft_model, ref_data, lt, b) for lt, b in task.plan.long_runs]
    return {
        "task": task, "pairs": pairs["stats"], "rankings": rankings["stats"],
        "dpo_variants": {"dpo": [keep(r) for r in dpo], "variant_runs": [keep(r) for r in variants_09],
                         "long_runs": long_09, "compute_s": task.run.compute_s(
                             [*(dpo_run_name(v.beta, v.loss_type, v.label_smoothing) for v in task.plan.variants),
                              *(f"long_{lt}_beta{b:g}/{e:g}" for lt, b in task.plan.long_runs
                                for e in task.plan.long_epochs)])},
        "reward_calls": {"offline pairs": task.plan.draws_per_prompt * pairs["stats"]["train"]["prompts"],
                         "online DPO (each run)": 2 * len(task.splits["pairs_train"]),
                         f"rankings (K={fam.ranking_k})": fam.ranking_k * rankings["stats"]["train"]["prompts"]},
        "points": points, "dpo_long": dpo_long,
        "compute_s": task.run.compute_s([*(dpo_run_name(v.beta, v.loss_type, v.label_smoothing, v.hyperparameters)
                                           for v in fam.variants),
                                         *(f"online_beta{b:g}" for b in fam.online_betas), f"rankings_k{fam.ranking_k}",
                                         *(f"{kind}_k{fam.ranking_k}_beta{fam.ranking_beta:g}"
                                           for kind in ("pl", "bestworst"))]),
        "plackett_luce_k2": ("the DPO run at beta {:g} (K = 2 Plackett-Luce DPO is DPO)".format(fam.ranking_beta)
                             if k2 else None),
    }


# ----------------------------------------------------------------------------- the instruction experiment


def instruction_family(profile: Profile, run_dir=None, show_progress: bool = True) -> dict:
    """R-DPO, SimPO and length-normalised DPO on the instruction pairs, from the instruction experiment's reference,
    each scored on validation at the plan's checkpoints and read at its best one (notebook 07's rule), then judged
    on the test prompts with the same instruments against the reference, beside DPO at its selected beta."""
    from ..evaluate import load_sentence_encoder
    from ..judges import CachedEncoder
    from .instruction import marks, prepare, trajectory
    from .instruction_arms import sample_arm, select, train_all
    from .instruction_eval import build_judge, compare, compare_rate, judge_wins, per_prompt
    from .instruction_results import arm_summary

    exp = prepare(profile, run_dir, show_progress)
    trained = train_all(exp)  # cached stages of `python -m minidpo run`
    arms, beta = trained["arms"], trained["selection"]["selected_beta"]
    reference, ref_data = trained["reference_model"], trained["ref_data"]
    mean_len = sum(map(len, exp.tokenized["dpo_train"]["chosen_ids"])) / len(exp.tokenized["dpo_train"])
    first, codec, table = exp.plan.seeds[0], exp.codec(), {}
    names = [trained["selection"]["selected_dpo_arm"]]
    for v in profile.family.instruction_variants:
        # no beta of its own: DPO's selected one (per token for the length-normalised loss: times the mean reply length)
        b = v.beta if v.beta is not None else beta * (round(mean_len) if v.loss_type == "sigmoid_norm" else 1)
        run = f"{v.loss_type}_beta{b:g}" + "".join(f"_{k}{x:g}" for k, x in v.hyperparameters)
        points = trajectory(exp, reference, ref_data, "dpo", b, seed=first, loss_type=v.loss_type, arm=run,
                            hyperparameters=v.hyperparameters)
        epochs = select(points)["budget"]
        exp.model_keys[f"{run}@{epochs:g}"] = {"run": exp.model_keys[run], "epochs": epochs}
        arms[run] = sample_arm(exp, run, v.method, [(f"{run}@{epochs:g}",
                                                    lambda run=run, e=epochs: exp.run.phase_model(run, e, codec))],
                              reference, b, epochs, (first,))
        table[v.method] = {"arm": run, "loss_type": v.loss_type, "hyperparameters": dict(v.hyperparameters)}
        names.append(run)
    table = {"DPO": {"arm": names[0], "loss_type": "sigmoid", "hyperparameters": {}}, **table}
    encoder = CachedEncoder(load_sentence_encoder(exp.plan.sentence_encoder, device=profile.device))
    judge, validation = build_judge(exp, encoder)
    q, ref, seed = exp.questions("test"), arms["reference"], profile.seed
    scores = {kind: (lambda rs, kind=kind: marks(exp.lexicons, kind, rs)) for kind in exp.lexicons}
    for method, row in table.items():
        arm = arms[row["arm"]]
        row.update(arm_summary(exp, arm))
        row["judge_vs_reference"] = compare_rate("preference-judge win rate", method, "reference",
                                                 judge_wins(judge, q, arm, ref), len(arm.seeds), seed)
        for kind, score in scores.items():
            row[f"{kind}_minus_reference"] = compare(f"{kind} rate", method, "reference", per_prompt(arm, score),
                                                     per_prompt(ref, score), len(arm.seeds), seed)
    table["reference"] = {"arm": "reference", **arm_summary(exp, ref)}
    # the family's own stages: each variant's phases (`<run>/<epochs>`), samples and KL (`.../<run>@<epochs>...`)
    own = [n for n in exp.run.timing() if any(n.startswith(f"{run}/") or f"/{run}@" in n for run in names[1:])]
    return {"selected_beta": beta, "mean_chosen_tokens": mean_len, "rows": table,
            "judge": {k: validation[k] for k in ("test_pair_accuracy", "refit_test_pair_accuracy", "probes")},
            "timing": exp.timing(), "compute_s": exp.run.compute_s(own)}


# ----------------------------------------------------------------------------- everything, for the CLI and notebook 10


def run_family(profile: Profile, run_dir=None, instruction_run_dir=None, results_dir="results", figures_dir="figures",
               show_progress: bool = True) -> dict:
    """Both parts of notebook 10; saves results/family_<profile>.json and the figures."""
    from .family_plots import family_figures

    t0 = time.time()
    sentiment = sentiment_family(profile, run_dir, show_progress)
    task = sentiment.pop("task")
    instruction = instruction_family(profile, instruction_run_dir, show_progress)
    fam_points = [p for p in sentiment["points"] if p["method"] not in ("SFT", "DPO")]
    results = {
        "profile": profile.name, "command": f"MINIDPO_PROFILE={profile.name} python -m minidpo family",
        "model": profile.model, "model_note": model_note(profile.model), "seed": profile.seed,
        "plan": to_json(profile.family),
        "frontier_plan": to_json(task.plan),  # the sentiment base's plan, whole (the plan actually used)
        "instruction_plan": to_json(profile.instruction),
        "sentiment": sentiment, "instruction": instruction,
        # compute of the family's own stages (training + scoring), as measured when each ran
        "compute_s": sentiment["compute_s"] + instruction["compute_s"],
        "peak_rss_gib": max([p["train"]["peak_rss_gib"] or 0.0 for p in fam_points] + [peak_rss_gib()]),
        "wall_s_this_invocation": time.time() - t0,
        "environment": {"minidpo": __version__, "torch": torch.__version__, "threads": torch.get_num_threads()},
    }
    return write_results_and_figures(Path(results_dir) / f"family_{profile.name}.json", results,
                                     lambda r: family_figures(r, figures_dir))

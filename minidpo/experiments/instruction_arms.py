"""Every arm of the instruction experiment trained, chosen on validation, and sampled on test.

    reference    SFT on both replies, its checkpoint chosen on validation (`instruction.reference_run`)
    trajectories Preferred-FT and DPO at the first beta at each of `plan.learning_rates`, then DPO at the other
                 betas at DPO's chosen learning rate (training seed `plan.seeds[0]`), scored on validation at
                 `plan.checkpoints` (`instruction.trajectory`)
    selection    the learning rate, the checkpoint (and DPO's beta) with the highest validation polite-minus-rude
                 rate
    seeds        the selected DPO arm and Preferred-FT trained again with every other seed of `plan.seeds`, to the
                 selected checkpoint
    test         `plan.samples_per_prompt` replies per test prompt from every arm and seed, and the sampled KL to
                 the reference (sample set 0)
"""

from __future__ import annotations

from dataclasses import dataclass

from ..generate import SAMPLER
from .instruction import (InstructionExperiment, dpo_arm, pft_arm, reference_logprobs, reference_run, sampled_kl,
                          samples, trajectory, validation_point)


@dataclass(frozen=True)
class Arm:
    """One arm on the test prompts: its name, method, beta (DPO), the training epochs read, and per training seed
    its replies (`replies[seed][sample_set][prompt]`) and log-ratios to the reference (`log_ratios[seed][prompt]`,
    sample set 0; the reference's are 0)."""

    name: str
    method: str  # "base", "reference", "Preferred-FT", "DPO"
    beta: float | None
    epochs: float | None
    seeds: tuple[int, ...]
    replies: tuple
    log_ratios: tuple


def selection_score(point: dict) -> float:
    """What the data prefers, read on one checkpoint's validation replies: the polite rate minus the rude rate."""
    return (sum(point["polite"]) - sum(point["rude"])) / len(point["rude"])


def select(points: list[dict]) -> dict:
    """The checkpoint with the highest `selection_score` (ties: the earlier one, nearer the reference)."""
    return max(points, key=lambda p: (selection_score(p), -p["budget"]))


def chosen_learning_rate(scores: list[tuple[float | None, float]]) -> float | None:
    """The learning rate whose (best checkpoint's) validation score is highest; ties: the smaller rate."""
    return max(scores, key=lambda x: (x[1], -(x[0] or 0.0)))[0]


def sample_arm(exp: InstructionExperiment, name: str, method: str, models: list[tuple[str, object]], reference,
              beta=None, epochs=None, seeds=(0,)) -> Arm:
    """Sample every model on the test prompts (`models`: one (sample-stage name, callable returning the model) per
    training seed), and its KL to the reference."""
    replies, ratios = [], []
    for arm, make in models:
        model = make()
        sets = [samples(exp, arm, model, "test", k) for k in range(exp.plan.samples_per_prompt)]
        replies.append(tuple(tuple(s["replies"]) for s in sets))
        ratios.append(tuple([0.0] * len(sets[0]["replies"])) if model is reference
                      else tuple(sampled_kl(exp, arm, model, reference, sets[0])))
        del model
    return Arm(name, method, beta, epochs, tuple(seeds), tuple(replies), tuple(ratios))


def validation_origin(ref_record: dict, ref_data: dict) -> dict:
    """Where every trajectory starts: the kept reference checkpoint's validation reading, at KL 0 (its log-ratio
    to itself), with the reference's own log-probs of the validation pairs."""
    kept = ref_record["checkpoints"][[c["budget"] for c in ref_record["checkpoints"]].index(
        ref_record["selected_epochs"])]
    return {"budget": 0.0, "steps": 0, "replies": kept["replies"], "rude": kept["rude"], "polite": kept["polite"],
            "log_ratios": [0.0] * len(kept["rude"]), "logps/chosen": list(ref_data["validation"]["ref_chosen_logps"]),
            "logps/rejected": list(ref_data["validation"]["ref_rejected_logps"])}


def validation_runs(exp: InstructionExperiment, reference, ref_data: dict) -> tuple[dict, dict, dict]:
    """The trajectories on validation and every choice made there (training seed `plan.seeds[0]`): Preferred-FT and
    DPO at the first beta at each of `plan.learning_rates`, the learning rate per method, DPO at the other betas at
    DPO's rate, each run's best checkpoint and the DPO arm. Returns (runs {run name: (method, beta, learning rate,
    points)}, best {run name: point}, selection)."""
    p = exp.plan
    first, lrs = p.seeds[0], p.learning_rates or (None,)
    runs = {}  # run name -> (method, beta, learning rate, validation points)
    for lr in lrs:  # the learning rate searched on the first beta and on Preferred-FT, then fixed
        runs[pft_arm(first, lr)] = ("Preferred-FT", None, lr,
                                    trajectory(exp, reference, ref_data, "preferred_ft", seed=first, learning_rate=lr))
        runs[dpo_arm(p.betas[0], first, lr)] = ("DPO", p.betas[0], lr, trajectory(
            exp, reference, ref_data, "dpo", p.betas[0], seed=first, learning_rate=lr))
    best = {name: select(points) for name, (*_, points) in runs.items()}
    chosen_lr = {method: chosen_learning_rate([(lr, selection_score(best[n])) for n, (m, _, lr, _) in runs.items()
                                               if m == method]) for method in ("DPO", "Preferred-FT")}
    for beta in p.betas[1:]:
        lr = chosen_lr["DPO"]
        name = dpo_arm(beta, first, lr)
        runs[name] = ("DPO", beta, lr, trajectory(exp, reference, ref_data, "dpo", beta, seed=first, learning_rate=lr))
        best[name] = select(runs[name][3])
    # one arm per method and beta, in the plan's order whichever rates won: the run at the chosen learning rate
    arm_runs = {pft_arm(): pft_arm(first, chosen_lr["Preferred-FT"]),
                **{dpo_arm(b): dpo_arm(b, first, chosen_lr["DPO"]) for b in p.betas}}
    # the first maximum in the plan's order of betas: ties go to the beta listed first
    dpo_best = max((a for a in arm_runs if runs[arm_runs[a]][0] == "DPO"),
                   key=lambda a: (selection_score(best[arm_runs[a]]), -best[arm_runs[a]]["budget"]))
    selection = {"rule": "highest validation polite rate minus rude rate (one reply per prompt, training seed "
                         f"{first}); ties: the earlier checkpoint, the beta listed first in the plan",
                 "learning_rate_rule": "the learning rate of the plan's list whose best checkpoint scores highest by "
                                       f"the same rule, DPO at beta={p.betas[0]:g} and Preferred-FT; ties: the "
                                       "smaller; the other betas then run at DPO's",
                 "learning_rates": chosen_lr, "runs": arm_runs,
                 "selected_beta": runs[arm_runs[dpo_best]][1], "selected_dpo_arm": dpo_best,
                 "checkpoints": {a: {"epochs": best[n]["budget"], "score": selection_score(best[n])}
                                 for a, n in arm_runs.items()},
                 "scores": {n: [selection_score(x) for x in pts] for n, (*_, pts) in runs.items()}}
    return runs, best, selection


def second_reading(exp: InstructionExperiment, name: str, model_key: dict, make_model, reference) -> dict:
    """One model on a second validation sample set (sample set 1): rude and polite marks and, against `reference`,
    log-ratios (the reference itself: 0). The matched-KL reading uses these replies, not the ones that chose the
    learning rates, beta and checkpoints (a stage, `validation_set1/<name>`)."""
    def read() -> dict:
        model = make_model()
        point = validation_point(exp, model, None if model is reference else reference, sample_set=1, pairs=False)
        return {"rude": point["rude"], "polite": point["polite"],
                "log_ratios": point.get("log_ratios", [0.0] * len(point["rude"]))}

    p = exp.plan
    key = {"model": model_key, "reference": exp.model_keys["reference"], "sample_set": 1, "sampler": SAMPLER,
           "max_new_tokens": p.max_new_tokens, "temperature": p.temperature, "batch_size": p.generation_batch_size,
           "lexicons": {k: v["markers"] for k, v in exp.lexicons.items()}}
    return exp.run.stage(f"validation_set1/{name}", read, key)


def second_readings(exp: InstructionExperiment, reference, runs: dict, selection: dict) -> dict:
    """`second_reading` of the reference ("origin") and of every checkpoint of the selected DPO arm's and
    Preferred-FT's runs ({arm: {"points": [...]}})."""
    codec = exp.codec()
    out = {"origin": {"budget": 0.0, "steps": 0, **second_reading(exp, "reference", exp.model_keys["reference"],
                                                                   lambda: reference, reference)}}
    for arm in (pft_arm(), selection["selected_dpo_arm"]):
        run = selection["runs"][arm]
        out[arm] = {"points": [{"budget": pt["budget"], "steps": pt["steps"], **second_reading(
            exp, f"{run}/{pt['budget']:g}", {"run": exp.model_keys[run], "epochs": pt["budget"]},
            lambda run=run, b=pt["budget"]: exp.run.phase_model(run, b, codec), reference)} for pt in runs[run][3]]}
    return out


def train_all(exp: InstructionExperiment, release_base_model: bool = False) -> dict:
    """The whole training side: {"reference": record, "trajectories": {run: points}, "second_validation": the
    matched-KL reading's replies (`second_readings`), "origin": the reference's validation point, "selection":
    {...}, "arms": {name: Arm}, "reference_model", "ref_data" (the DPO pairs with the reference's log-probs)}.
    One policy and the reference are in memory at a time besides the base model (the model a policy trains from is
    parked meanwhile: `models.parked`); with `release_base_model` (the command line's run) `exp.base_model` is
    dropped once its arm is sampled, so training does not hold it."""
    p, codec = exp.plan, exp.codec()
    reference, ref_record = reference_run(exp)
    ref_data = reference_logprobs(exp, reference)
    origin = validation_origin(ref_record, ref_data)
    # every stage draws from its own seed, so sampling the base arm first changes no number
    arms = {"base": sample_arm(exp, "base", "base", [("base", lambda: exp.base_model)], reference)}
    if release_base_model:
        exp.base_model = None
    runs, best, selection = validation_runs(exp, reference, ref_data)
    arm_runs, dpo_best, first = selection["runs"], selection["selected_dpo_arm"], p.seeds[0]
    arms["reference"] = sample_arm(exp, "reference", "reference", [("reference", lambda: reference)], reference,
                                   epochs=ref_record["selected_epochs"])
    for name, run_name in arm_runs.items():
        method, beta, lr, _ = runs[run_name]
        epochs = best[run_name]["budget"]
        seeds = p.seeds if name in (pft_arm(), dpo_best) else (first,)
        models = []
        for seed in seeds:
            run = pft_arm(seed, lr) if beta is None else dpo_arm(beta, seed, lr)
            if seed != first:  # trained to the checkpoint chosen on the first seed's validation scores
                trajectory(exp, reference, ref_data, "preferred_ft" if beta is None else "dpo", beta, seed=seed,
                           budgets=(epochs,), scored=False, learning_rate=lr)
            exp.model_keys[f"{run}@{epochs:g}"] = {"run": exp.model_keys[run], "epochs": epochs}
            models.append((f"{run}@{epochs:g}", lambda run=run, e=epochs: exp.run.phase_model(run, e, codec)))
        arms[name] = sample_arm(exp, name, method, models, reference, beta, epochs, seeds)
    trajectories = {n: {"method": m, "beta": b, "learning_rate": lr, "points": pts}
                    for n, (m, b, lr, pts) in runs.items()}
    return {"reference": ref_record, "trajectories": trajectories,
            "second_validation": second_readings(exp, reference, runs, selection), "origin": origin,
            "selection": selection, "arms": arms, "reference_model": reference, "ref_data": ref_data}

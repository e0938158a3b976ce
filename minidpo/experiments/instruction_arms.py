"""Every arm of the instruction experiment trained, chosen on validation, and sampled on test.

    reference    SFT on both replies, its checkpoint chosen on validation (`instruction.reference_run`)
    trajectories DPO at each beta and Preferred-FT (training seed `plan.seeds[0]`) scored on validation at
                 `plan.checkpoints` (`instruction.trajectory`)
    selection    the checkpoint (and DPO's beta) with the highest validation polite-minus-rude rate
    seeds        the selected DPO arm and Preferred-FT trained again with every other seed of `plan.seeds`, to the
                 selected checkpoint
    test         `plan.samples_per_prompt` replies per test prompt from every arm and seed, and the sampled KL to
                 the reference (sample set 0)
"""

from __future__ import annotations

from dataclasses import dataclass

from .instruction import (InstructionExperiment, dpo_arm, pft_arm, reference_logprobs, reference_run, sampled_kl,
                          samples, trajectory)


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


def train_all(exp: InstructionExperiment) -> dict:
    """The whole training side: {"reference": record, "trajectories": {run: points}, "origin": the reference's
    validation point, "selection": {...}, "arms": {name: Arm}, "reference_model", "ref_data" (the DPO pairs with
    the reference's log-probs)}. One policy and the reference are in memory at a time besides the base model."""
    p, codec = exp.plan, exp.codec()
    reference, ref_record = reference_run(exp)
    ref_data = reference_logprobs(exp, reference)
    origin = validation_origin(ref_record, ref_data)
    first = p.seeds[0]
    runs = {pft_arm(first): ("Preferred-FT", None, trajectory(exp, reference, ref_data, "preferred_ft", seed=first))}
    for beta in p.betas:
        runs[dpo_arm(beta, first)] = ("DPO", beta, trajectory(exp, reference, ref_data, "dpo", beta, seed=first))
    best = {name: select(points) for name, (_, _, points) in runs.items()}
    # the first maximum in the plan's order of betas: ties go to the beta listed first
    dpo_best = max((n for n in runs if runs[n][0] == "DPO"),
                   key=lambda n: (selection_score(best[n]), -best[n]["budget"]))
    selection = {"rule": "highest validation polite rate minus rude rate (one reply per prompt, training seed "
                         f"{first}); ties: the earlier checkpoint, the beta listed first in the plan",
                 "selected_beta": runs[dpo_best][1], "selected_dpo_arm": dpo_best,
                 "checkpoints": {n: {"epochs": b["budget"], "score": selection_score(b)} for n, b in best.items()},
                 "scores": {n: [selection_score(x) for x in pts] for n, (_, _, pts) in runs.items()}}
    arms = {"base": sample_arm(exp, "base", "base", [("base", lambda: exp.base_model)], reference),
            "reference": sample_arm(exp, "reference", "reference", [("reference", lambda: reference)], reference,
                                   epochs=ref_record["selected_epochs"])}
    for name, (method, beta, _) in runs.items():
        epochs = best[name]["budget"]
        seeds = p.seeds if name in (pft_arm(first), dpo_best) else (first,)
        models = []
        for seed in seeds:
            run = pft_arm(seed) if beta is None else dpo_arm(beta, seed)
            if seed != first:  # trained to the checkpoint chosen on the first seed's validation scores
                trajectory(exp, reference, ref_data, "preferred_ft" if beta is None else "dpo", beta, seed=seed,
                           budgets=(epochs,), scored=False)
            exp.model_keys[f"{run}@{epochs:g}"] = {"run": exp.model_keys[run], "epochs": epochs}
            models.append((f"{run}@{epochs:g}", lambda run=run, e=epochs: exp.run.phase_model(run, e, codec)))
        arms[name] = sample_arm(exp, name, method, models, reference, beta, epochs, seeds)
    return {"reference": ref_record, "trajectories": {n: {"method": m, "beta": b, "points": pts}
                                                      for n, (m, b, pts) in runs.items()},
            "origin": origin, "selection": selection, "arms": arms, "reference_model": reference, "ref_data": ref_data}

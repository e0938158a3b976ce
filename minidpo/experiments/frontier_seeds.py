"""The seeded runs of notebook 08's frontier, each a curve: DPO at each beta and PPO / PPO-GT at each kl_coef, every run
(`plan.seeds`) stopped and scored on the test prompts at its checkpoints (`Run.phases`). Before them, a one-seed PPO
pilot on the validation prompts chooses PPO's learning rate among `plan.ppo_pilot_lrs` (`select_ppo_learning_rate`).
The matched-KL verdicts on these curves are `frontier_verdicts`."""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace

from ..loop import optimizer_steps
from ..rlhf import PolicyWithValue, train_ppo
from ..train import train_dpo
from ..utils import derive_seed
from .frontier import Task
from .scoring import evaluate_policy

PPO_DIAGNOSTICS = ("policy/approxkl_avg", "policy/clipfrac_avg", "val/ratio", "val/ratio_max", "loss/value_avg",
                   "policy/entropy_avg")


def dpo_curve_run(task: Task, sft_model, ref_data: dict, beta: float, seed: int) -> dict:
    """DPO at `beta` with training seed `seed` (the order of the pairs), scored on the test prompts after each entry
    of `plan.dpo_checkpoints` epochs: the points of its curve."""
    name = f"dpo_beta{beta:g}_seed{seed}"
    config = replace(task.plan.dpo, beta=beta)
    steps = lambda epochs: optimizer_steps(epochs, len(ref_data["train"]), config.batch_size)  # noqa: E731
    model = copy.deepcopy(sft_model)

    def train_to(epochs: float, folder) -> list[dict]:
        cfg = task.config(config, folder, seed=seed, max_steps=steps(epochs))
        return train_dpo(model, ref_data["train"], ref_data["validation"], cfg, task.pad)

    def score(epochs: float, history: list[dict]) -> dict:
        evals = [h for h in history if "eval_loss" in h]  # the implicit reward's last held-out reading
        return {**evaluate_policy(task, model.eval(), sft_model, "test", per_prompt=True), "steps": steps(epochs),
                "pairs_seen": steps(epochs) * config.batch_size, "eval": evals[-1] if evals else {}}

    points, history = task.run.phases(name, {"task": task.key, "dpo": config, "seed": seed}, task.plan.dpo_checkpoints,
                                      train_to, score)
    return {"method": "DPO", "beta": beta, "seed": seed, "budget_unit": "epochs", "points": points, "history": history}


def _ppo_phases(task: Task, sft_model, reward_model, reward_key, name: str, config, seed: int, budgets: tuple,
                split: str, ground_truth: bool) -> tuple[list[dict], list[dict]]:
    """One PPO run (on `reward_model`, or on the true reward with `ground_truth`) scored on `split` after each of
    `budgets` iterations, with the reward model's score of its own samples beside their true reward."""
    prompts = list(task.splits["pairs_train"]["prompt"])  # the prompts the pairs came from
    policy = PolicyWithValue(copy.deepcopy(sft_model)).to(task.profile.device)

    def train_to(iterations: int, folder) -> list[dict]:
        cfg = task.config(config, folder, seed=seed, iterations=iterations)
        return train_ppo(policy, sft_model, task.true_reward if ground_truth else reward_model, task.tokenizer, prompts,
                         cfg, ground_truth=task.true_reward)

    def score(iterations: int, history: list[dict]) -> dict:
        return evaluate_policy(task, policy.lm.eval(), sft_model, split, per_prompt=True, reward_model=reward_model)

    key = {"task": task.key, "ppo": config, "seed": seed, "reward": "ground truth" if ground_truth else reward_key,
           "scored_with": reward_key, "split": split}
    return task.run.phases(name, key, budgets, train_to, score)


def is_stable(max_approxkl: float, threshold: float) -> bool:
    """The plan's definition of a stable PPO run: every iteration's mean approxkl below `threshold`, i.e. the largest
    of them is."""
    return max_approxkl < threshold


@dataclass(frozen=True)
class PilotRun:
    """One learning rate of PPO's pilot: its stability diagnostics over the pilot's iterations and what it reached on
    the validation prompts."""

    learning_rate: float
    max_approxkl: float  # the largest per-iteration mean approxkl
    first_approxkl: float
    validation_reward: float
    validation_kl: float

    def stable(self, threshold: float) -> bool:
        return is_stable(self.max_approxkl, threshold)

    def objective(self, kl_coef: float) -> float:
        """The KL-regularised objective of eq. 3 with the true reward, on the validation prompts."""
        return self.validation_reward - kl_coef * self.validation_kl


def select_ppo_learning_rate(pilot: list[PilotRun], threshold: float) -> tuple[PilotRun, str]:
    """The plan's rule: the largest learning rate whose every pilot iteration kept its mean approxkl below
    `threshold` (`plan.ppo_pilot_threshold`, a fraction of the stability threshold): PPO then moves as far as it can
    in its budget while it stays stable; if none did, the smallest. Returns (the choice, the reason). Only validation
    numbers enter."""
    eligible = [p for p in pilot if p.stable(threshold)]
    if eligible:
        best = max(eligible, key=lambda p: p.learning_rate)
        return best, f"the largest learning rate with max approxkl under {threshold:g} ({best.max_approxkl:.3g})"
    best = min(pilot, key=lambda p: p.learning_rate)
    return best, f"no learning rate kept approxkl below {threshold:g}: the smallest"


def select_by_objective(pilot: list[PilotRun], threshold: float, kl_coef: float) -> PilotRun:
    """The pilot's first rule, replaced before any PPO curve was trained (kept to disclose what it chose): among the
    stable learning rates, the highest validation objective, true reward - kl_coef KL."""
    stable = [p for p in pilot if p.stable(threshold)] or pilot
    return max(stable, key=lambda p: p.objective(kl_coef))


def second_rule_choice(runs: list[dict], threshold: float, iterations: int) -> float:
    """The pilot's second rule, kept to disclose what it would choose on this pilot: the largest learning rate
    stable at `threshold` (no fraction) over the pilot's first `iterations` iterations."""
    truncated = [replace(r["run"], max_approxkl=max(r["diagnostics"]["policy/approxkl_avg"][:iterations]))
                 for r in runs]
    return select_ppo_learning_rate(truncated, threshold)[0].learning_rate


def choose_ppo_learning_rate(runs: list[dict], plan) -> dict:
    """The pilot's choice from its runs ({"run": PilotRun, "diagnostics": {...}}): the rule at
    `plan.ppo_pilot_approxkl_fraction` x `plan.ppo_stable_approxkl`, its reason, and what the two earlier rules would
    choose on this pilot (the first on all its iterations; the second, where the plan records one, on its first
    `plan.ppo_pilot_earlier_iterations`), with why each was replaced."""
    threshold, pilot_threshold, kl_coef = plan.ppo_stable_approxkl, plan.ppo_pilot_threshold, plan.kl_coefs[0]
    pilot = [r["run"] for r in runs]
    choice, reason = select_ppo_learning_rate(pilot, pilot_threshold)
    out = {"learning_rate": choice.learning_rate, "reason": reason, "pilot_threshold": pilot_threshold,
           "rule": (f"stable = every iteration's mean approxkl < {threshold:g}; the pilot chooses the largest "
                    f"learning rate whose every iteration stays under {plan.ppo_pilot_approxkl_fraction:g} x "
                    f"{threshold:g} = {pilot_threshold:g}; none does: the smallest"),
           "rule_change": {"first_rule": f"among stable learning rates the highest validation true reward - "
                                         f"{kl_coef:g} KL",
                           "first_rule_choice": select_by_objective(pilot, threshold, kl_coef).learning_rate,
                           "why": "after an earlier run's pilot, before any PPO curve was trained or scored on a "
                                  "test prompt: the pilot's objectives differed by less than their noise (one seed, "
                                  f"{plan.n_pairs_val} validation prompts), so the first rule chose on noise, and "
                                  "its choice there barely moved PPO in the budget"}}
    if plan.ppo_pilot_earlier_iterations:
        n = plan.ppo_pilot_earlier_iterations
        out["second_rule_change"] = {
            "second_rule": f"the largest learning rate stable at {threshold:g} over a {n}-iteration pilot",
            "second_rule_choice": second_rule_choice(runs, threshold, n),
            "second_rule_choice_full_pilot": select_ppo_learning_rate(pilot, threshold)[0].learning_rate,
            "earlier_run": "results/reruns/frontier_before_margin.json",
            "why": "after the run it chose for had been scored on the test prompts: its pilot (one seed, the first "
                   "kl_coef) had stayed under the threshold, but most of that run's PPO and PPO-GT runs, on other "
                   "seeds and at the other kl_coef, left it within the pilot's iterations; the fraction leaves room "
                   "for what the pilot does not run. Only approxkl entered the change. The pilot also runs as many "
                   "iterations as the curves now, which alone would not change the choice "
                   "(second_rule_choice_full_pilot)"}
    return out


def ppo_pilot(task: Task, sft_model, reward_model, reward_key) -> dict:
    """PPO on the reward model at the plan's first kl_coef, one seed, `plan.ppo_pilot_iterations` iterations, at each
    learning rate of `plan.ppo_pilot_lrs`, scored on the *validation* prompts; the learning rate PPO and PPO-GT then
    use is `choose_ppo_learning_rate`'s. Returns the runs, the seed, split and iterations, and the choice."""
    plan = task.plan
    kl_coef = plan.kl_coefs[0]
    if not plan.ppo_pilot_lrs:
        return {"runs": [], "learning_rate": plan.ppo.learning_rate, "reason": "the plan's (no pilot)",
                "pilot_threshold": plan.ppo_pilot_threshold}
    seed = derive_seed(task.profile.seed, "ppo pilot")
    runs = []
    for lr in plan.ppo_pilot_lrs:
        config = replace(plan.ppo, kl_coef=kl_coef, learning_rate=lr, max_new_tokens=plan.max_new_tokens)
        points, history = _ppo_phases(task, sft_model, reward_model, reward_key, f"ppo_pilot_lr{lr:g}", config, seed,
                                      (plan.ppo_pilot_iterations,), "validation", ground_truth=False)
        diag = {k: [h[k] for h in history] for k in PPO_DIAGNOSTICS + ("objective/kl", "ground_truth_reward")}
        run = PilotRun(lr, max(diag["policy/approxkl_avg"]), diag["policy/approxkl_avg"][0], points[-1]["reward"],
                       points[-1]["kl"])
        runs.append({"run": run, "diagnostics": diag, "history": history})
    return {"runs": runs, "kl_coef": kl_coef, "iterations": plan.ppo_pilot_iterations, "seed": seed,
            "split": "validation", **choose_ppo_learning_rate(runs, plan)}


def ppo_curve_run(task: Task, sft_model, reward_model, reward_key, kl_coef: float, seed: int, learning_rate: float,
                  ground_truth: bool = False) -> dict:
    """PPO (or PPO-GT) at `kl_coef` and the pilot's `learning_rate` with training seed `seed` (prompt order,
    rollouts), scored on the test prompts after each entry of `plan.ppo_checkpoints` iterations. PPO maximises the
    calibrated reward model's score, PPO-GT the true reward itself; both are scored by the reward model too (its
    accuracy on their own samples)."""
    method = "PPO-GT" if ground_truth else "PPO"
    name = f"{'ppo_gt' if ground_truth else 'ppo'}_kl{kl_coef:g}_seed{seed}"
    checkpoints = task.plan.ppo_checkpoints or (task.plan.ppo.iterations,)
    config = replace(task.plan.ppo, kl_coef=kl_coef, learning_rate=learning_rate,
                     max_new_tokens=task.plan.max_new_tokens)
    points, history = _ppo_phases(task, sft_model, reward_model, reward_key, name, config, seed, checkpoints, "test",
                                  ground_truth)
    return {"method": method, "kl_coef": kl_coef, "seed": seed, "budget_unit": "iterations", "points": points,
            "history": history}

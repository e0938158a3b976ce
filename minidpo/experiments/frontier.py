"""The reward-KL frontier of DPO, PPO and other baselines on controlled sentiment (notebook 08), and the stages
notebooks 09-10 build on (`python -m minidpo frontier`; profile from $MINIDPO_PROFILE, default "cpu"). The DPO
paper's figure 2 (left) at small scale, with a ground-truth reward we can compute: review prefixes -> SFT on true
continuations -> two replies per prompt from SFT, the one with the higher true reward `chosen` -> on those pairs
DPO, reward model + PPO, PPO on the true reward, preferred-FT, best-of-N.

This module: the task, SFT, the pairs, scoring a policy, and the one-seed DPO runs (`dpo_run`,
`over_optimisation_run`) of notebook 09. `frontier_seeds` holds the seeded runs and verdicts of notebook 08,
`frontier_rlhf` the reward model and best-of-N, `frontier_run` the whole experiment and its figures.

Each run is scored on held-out prompts by its mean true reward (one reply per prompt at temperature 1) and
its sequence KL(pi || pi_SFT), estimated from the same samples as the mean of log pi(y|x) - log pi_SFT(y|x)
(unbiased: y is drawn from pi). Every stage is a `Run.stage` in `runs/<profile>/frontier/` (`runs/<profile>/sentiment/`
for the one-seed base), keyed by the plan entries it depends on, so an interrupted run picks up where it stopped and
notebooks re-use the CLI's runs.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import torch
from datasets import Dataset

from ..batching import completions_from_pairs, tokenize_prompts, tokenize_sft
from ..generate import SAMPLER, generate_responses
from ..logprobs import precompute_reference_logprobs, with_reference_logprobs
from ..losses import LOSSES
from ..models import load_model
from ..loop import optimizer_steps
from ..train import train_dpo, train_sft
from ..utils import derive_seed
from .profiles import FrontierPlan, Profile
from .runs import TENSORS, Run, model_codec, open_run
from .scoring import evaluate_policy, trained_and_scored
from .sentiment import SNIPPETS_FILE, ground_truth_reward, join, load_review_prompts, review_snippets_path

# ----------------------------------------------------------------------------- the task


@dataclass
class Task:
    """What every stage shares: the profile, its plan, the run folder, tokenizer, base model, prompt splits and
    the ground-truth reward."""

    profile: Profile
    plan: FrontierPlan
    run: Run
    tokenizer: object  # a transformers tokenizer
    base_model: torch.nn.Module
    splits: dict[str, Dataset]  # test / pairs_val / pairs_train / sft -> (record_id, prompt, continuation)
    reward_fn: Callable[[list[str]], torch.Tensor]  # texts -> true rewards
    show_progress: bool = True
    info: dict = field(default_factory=dict)
    key: dict = field(default_factory=dict)  # what every stage depends on: model, seed, data, SFT and sampling

    @property
    def run_dir(self) -> Path:
        return self.run.dir

    @property
    def pad(self) -> int:
        return self.tokenizer.pad_token_id

    def true_reward(self, prompts: list[str], replies: list[str]) -> torch.Tensor:
        return self.reward_fn([join(p, r) for p, r in zip(prompts, replies)])

    def prompts(self, split: str = "test") -> list[str]:
        """The held-out prompts a policy is scored on: "test", or "validation" (the pair-validation prompts,
        where budgets are chosen)."""
        return list(self.splits["pairs_val" if split == "validation" else split]["prompt"])

    def config(self, config, folder: Path, seed: int | None = None, **fields):
        """The plan's training `config` (`SFTConfig`, `DPOConfig`, ...) writing its checkpoints to `folder`, with
        the task's seed unless `seed` is given, and `fields` set."""
        seed = self.profile.seed if seed is None else seed
        device = {"use_cpu": self.profile.device == "cpu"} if hasattr(config, "use_cpu") else {}
        return replace(config, output_dir=str(folder), seed=seed, show_progress=self.show_progress, **device, **fields)

    def stage(self, name: str, compute, key=None, codec=None):
        """`Run.stage` with the task's key folded into the stage's own."""
        return self.run.stage(name, compute, {"task": self.key, **(key or {})}, *([codec] if codec else []))

    def sample(self, model, prompts: list[str], seed: int, return_logps: bool = False):
        """One reply per prompt at temperature 1: texts and the token ids as drawn (and, with `return_logps`, each
        reply's log-probability under `model`)."""
        return generate_responses(model, self.tokenizer, prompts, max_new_tokens=self.plan.max_new_tokens,
                                  temperature=1.0, seed=seed, batch_size=64, show_progress=False,
                                  return_logps=return_logps)


def prepare_task(profile: Profile, run_dir: str | Path | None = None, show_progress: bool = True,
                 plan: FrontierPlan | None = None, subdir: str = "frontier") -> Task:
    """Review prefixes split into disjoint test / pair-validation / pair-train / SFT prompt sets, the base
    model and the ground-truth reward, for `plan` (default: the profile's frontier; notebook 09 passes
    `profile.sentiment` and subdir "sentiment"). The run folder (default `runs/<profile>/<subdir>`) holds the
    stages, each keyed by the plan entries it depends on: a changed plan recomputes what it touches."""
    plan = plan or profile.frontier
    run = open_run(run_dir, profile.name, subdir)
    sizes = {"test": plan.n_test, "pairs_val": plan.n_pairs_val, "pairs_train": plan.n_pairs_train, "sft": plan.n_sft}
    data = load_review_prompts(plan.source, seed=profile.seed, max_texts=sum(sizes.values()))
    if len(data) < sum(sizes.values()):
        raise ValueError(f"the review source has {len(data)} usable texts, the plan needs {sum(sizes.values())}")
    splits, start = {}, 0
    for name, n in sizes.items():
        splits[name] = data.select(range(start, start + n))
        start += n
    torch.manual_seed(profile.seed)
    texts = [p + c for p, c in zip(data["prompt"], data["continuation"])]
    model, tokenizer = load_model(profile.model, device=profile.device, seed=profile.seed, tokenizer_texts=texts)
    key = {"model": profile.model, "device": profile.device, "seed": profile.seed, "source": plan.source,
           "reward": plan.reward, "sizes": sizes, "max_new_tokens": plan.max_new_tokens,
           "draws_per_prompt": plan.draws_per_prompt, "sft": plan.sft, "sampler": SAMPLER}
    task = Task(profile, plan, run, tokenizer, model, splits, ground_truth_reward(plan.reward, profile.device),
                show_progress, key=key)
    if plan.source == "snippets":
        path = review_snippets_path()
        task.info["data"] = {"file": SNIPPETS_FILE, "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                             "origin": "vaderSentiment 3.3.2 sdist (Pang & Lee 2005 movie-review snippets)"}
    else:
        task.info["data"] = {"source": "stanfordnlp/imdb (train)"}
    task.info["sizes"] = sizes
    return task


def _continuation_data(task: Task, split: str) -> Dataset:
    """Prefix -> true continuation as tokenized SFT examples."""
    tokenized, _ = tokenize_sft(task.splits[split], task.tokenizer, "continuation", max_length=128,
                                max_prompt_length=32)
    return tokenized


def sft_stage(task: Task):
    """SFT on true continuations of the SFT prompts (the paper fine-tunes GPT-2-large on IMDb reviews)."""
    cfg = task.config(task.plan.sft, task.run.folder("sft"))

    def train():
        model = copy.deepcopy(task.base_model)
        data = _continuation_data(task, "sft"), _continuation_data(task, "pairs_val")
        return model, train_sft(model, *data, cfg, task.pad)

    model, history = task.stage("sft", train, codec=model_codec(task.tokenizer, task.profile.device))
    return model.eval(), history


# ----------------------------------------------------------------------------- preference pairs from SFT samples


def _sample_pairs(task: Task, sft_model, key: str) -> tuple[list[dict], dict]:
    """`draws_per_prompt` replies per prompt of split `key`; the best and the worst by true reward make a pair.
    Ties (equal reward, e.g. two neutral replies) carry no preference and are dropped *and counted*."""
    k = task.plan.draws_per_prompt
    prompts = list(task.splits[key]["prompt"])
    draws = [task.sample(sft_model, prompts, seed=derive_seed(task.profile.seed, "pairs", key, d)) for d in range(k)]
    rewards = torch.stack([task.true_reward(prompts, texts) for texts, _ in draws], 1)  # (P, k)
    records, ties = [], 0
    for i, prompt in enumerate(prompts):
        w, l = int(rewards[i].argmax()), int(rewards[i].argmin())
        if rewards[i, w] == rewards[i, l] or draws[w][1][i] == draws[l][1][i]:
            ties += 1
            continue
        records.append({"record_id": int(task.splits[key]["record_id"][i]), "prompt": prompt,
                        "chosen": draws[w][0][i], "rejected": draws[l][0][i],
                        "chosen_ids": draws[w][1][i], "rejected_ids": draws[l][1][i],
                        "chosen_reward": float(rewards[i, w]), "rejected_reward": float(rewards[i, l])})
    gaps = [r["chosen_reward"] - r["rejected_reward"] for r in records]
    return records, {"prompts": len(prompts), "draws_per_prompt": k, "pairs": len(records), "ties_dropped": ties,
                     "mean_reward_gap": sum(gaps) / max(1, len(gaps))}


def pairs_stage(task: Task, sft_model) -> dict:
    """Preference pairs sampled from the SFT model on the pair prompts (train and validation), cached.
    Returns {"train": tokenized pairs, "validation": ..., "stats": counts and reward gaps, "records": texts}."""
    def sample_all() -> dict:
        out = {"records": {}, "stats": {}}
        for split, key in (("train", "pairs_train"), ("validation", "pairs_val")):
            out["records"][split], out["stats"][split] = _sample_pairs(task, sft_model, key)
        if not out["records"]["train"] or not out["records"]["validation"]:
            raise ValueError(f"no preference pairs left after dropping ties: {out['stats']}")
        return out

    out = task.stage("pairs", sample_all)
    for split, recs in out["records"].items():
        # the sampled token ids themselves, not a re-tokenization of the decoded text
        out[split] = Dataset.from_dict({
            "record_id": [r["record_id"] for r in recs],
            "prompt_ids": tokenize_prompts(task.tokenizer, [r["prompt"] for r in recs]),
            "chosen_ids": [r["chosen_ids"] for r in recs], "rejected_ids": [r["rejected_ids"] for r in recs]})
    return out


def reference_stage(task: Task, sft_model, pairs: dict) -> dict:
    """log pi_SFT of every pair's replies, computed once (a stage)."""
    logps = task.stage("reference_logps", lambda: {
        split: precompute_reference_logprobs(sft_model, pairs[split], task.pad, batch_size=16,
                                             show_progress=task.show_progress)
        for split in ("train", "validation")}, codec=TENSORS)
    return {split: with_reference_logprobs(pairs[split], *logps[split]) for split in logps}


# ----------------------------------------------------------------------------- the SFT point


def sft_point(task: Task, sft_model, reward_model=None, reward_key=None) -> dict:
    """The starting point of every method: the SFT model itself (its KL to itself is 0 by construction), with
    each prompt's reward (for paired comparisons) and, given a `reward_model`, its score of each reply."""
    def score() -> dict:
        return {"method": "SFT", **evaluate_policy(task, sft_model, sft_model, per_prompt=True,
                                                   reward_model=reward_model)}

    # without a reward model a stage of its own: notebook 10 reads the frontier's folder without its reward model
    return task.stage("sft_eval" if reward_model is not None else "sft_eval_plain", score,
                      {"reward_model": reward_key} if reward_model is not None else None)


# ----------------------------------------------------------------------------- DPO and its variants


def dpo_run_name(beta: float, loss_type: str = "sigmoid", label_smoothing: float = 0.0,
                 hyperparameters: tuple[tuple[str, float], ...] = ()) -> str:
    """The stage name of a `dpo_run`: its loss and every setting that differs between runs."""
    name = f"{loss_type}_beta{beta:g}" + (f"_ls{label_smoothing:g}" if label_smoothing else "")
    return name + "".join(f"_{k}{v:g}" for k, v in hyperparameters)


def dpo_run(task: Task, sft_model, ref_data: dict, beta: float, loss_type: str = "sigmoid",
            label_smoothing: float = 0.0, method: str = "DPO",
            hyperparameters: tuple[tuple[str, float], ...] = ()) -> dict:
    """DPO (or a variant of `losses.LOSSES`, with its `hyperparameters`) from the SFT model on the sampled pairs,
    then scored on held-out prompts. KTO's mismatched pairs take their reference log-probs from the SFT model."""
    name = dpo_run_name(beta, loss_type, label_smoothing, hyperparameters)
    config = replace(task.plan.dpo, beta=beta, loss_type=loss_type, label_smoothing=label_smoothing,
                     **dict(hyperparameters))
    cfg = task.config(config, task.run.folder(name))
    ref_model = sft_model if LOSSES[loss_type].needs_mismatched else None
    train = lambda m: train_dpo(m, ref_data["train"], ref_data["validation"], cfg, task.pad,  # noqa: E731
                                ref_model=ref_model)
    return task.stage(name, lambda: {**trained_and_scored(task, sft_model, train, method=method, loss_type=loss_type,
                                                          beta=beta, label_smoothing=label_smoothing,
                                                          **dict(hyperparameters)), "config": cfg},
                      {"dpo": config, "method": method})


def preferred_ft_run(task: Task, sft_model, pairs: dict) -> dict:
    """The paper's "Preferred-FT": more SFT, on the chosen replies only."""
    cfg = task.config(task.plan.preferred_ft, task.run.folder("preferred_ft"))
    train = lambda m: train_sft(m, completions_from_pairs(pairs["train"]),  # noqa: E731
                                completions_from_pairs(pairs["validation"]), cfg, task.pad)
    return task.stage("preferred_ft", lambda: {**trained_and_scored(task, sft_model, train, per_prompt=True,
                                                                    method="Preferred-FT"), "config": cfg},
                      {"preferred_ft": task.plan.preferred_ft})


def over_optimisation_run(task: Task, sft_model, ref_data: dict, loss_type: str, beta: float) -> dict:
    """One DPO (or IPO, ...) run trained for `plan.long_epochs[-1]` epochs, stopped and scored after each
    entry of `long_epochs`: true reward and KL along training show whether it over-optimises."""
    name = f"long_{loss_type}_beta{beta:g}"
    config = replace(task.plan.dpo, beta=beta, loss_type=loss_type)
    model = copy.deepcopy(sft_model)
    steps = lambda epochs: optimizer_steps(epochs, len(ref_data["train"]), config.batch_size)  # noqa: E731

    def train_to(epochs: float, folder: Path) -> list[dict]:
        cfg = task.config(config, folder, max_steps=steps(epochs))
        return train_dpo(model, ref_data["train"], ref_data["validation"], cfg, task.pad)

    def score(epochs: float, history: list[dict]) -> dict:
        evals = [h for h in history if "eval_loss" in h]
        return {"steps": steps(epochs), **evaluate_policy(task, model.eval(), sft_model, per_prompt=True),
                "eval": evals[-1] if evals else {}}

    points, history = task.run.phases(name, {"task": task.key, "dpo": config, "scored": "per prompt"},
                                      task.plan.long_epochs, train_to, score)
    for p in points:
        p["epochs"] = p.pop("budget")
    return {"method": f"{loss_type} (long)", "loss_type": loss_type, "beta": beta, "points": points, "history": history}

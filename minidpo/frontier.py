"""The reward-KL frontier of DPO, PPO and the paper's other baselines on controlled sentiment (notebooks 08-09).

    python -m minidpo frontier       # profile from $MINIDPO_PROFILE, default "cpu"

The DPO paper's figure 2 (left) at small scale, with a ground-truth reward we can compute:

    review prefixes -> SFT on true continuations -> 2 samples per prompt from SFT, the one with the higher
    true reward is `chosen` -> on those same pairs: DPO at several beta, reward model + PPO at several KL
    coefficients, preferred-FT (SFT on chosen), best-of-N against the reward model; DPO variants
    (cDPO, IPO, hinge); and one long DPO run to look for over-optimisation.

Each run is scored on held-out prompts by its mean true reward (one reply per prompt at temperature 1) and
its sequence KL(pi || pi_SFT), estimated from the same samples as the mean of log pi(y|x) - log pi_SFT(y|x)
(unbiased: y is drawn from pi). Every stage caches its output in `runs/<profile>/frontier/`, so an interrupted
run picks up where it stopped and notebooks re-use the CLI's runs. Results: `results/frontier_<profile>.json`.
"""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from datasets import Dataset

from .data import completions_from_pairs, tokenize_prompts, tokenize_sft
from .evaluate import bootstrap_ci, sampled_log_ratios
from .experiments.runs import MemoryMonitor, claim_run_dir, load_base, peak_rss_gib, train_stage, write_results
from .generate import generate_responses
from .logprobs import precompute_reference_logprobs
from .models import model_note
from .profiles import Profile
from .rlhf import PolicyWithValue, PPOConfig, RewardConfig, RewardModel, best_of_n_kl, score_replies, train_ppo, train_reward_model
from .sentiment import SNIPPETS_FILE, ground_truth_reward, join, load_review_prompts, review_snippets_path
from .train import DPOConfig, SFTConfig, train_dpo, train_sft, with_reference_logprobs


# ----------------------------------------------------------------------------- the task


@dataclass
class Task:
    profile: Profile
    plan: dict  # profile.frontier
    run_dir: Path
    tokenizer: object
    base_model: object
    splits: dict  # name -> Dataset(record_id, prompt, continuation): test / pairs_val / pairs_train / sft
    reward_fn: object  # texts -> tensor of true rewards
    show_progress: bool = True
    info: dict = field(default_factory=dict)

    @property
    def pad(self) -> int:
        return self.tokenizer.pad_token_id

    @property
    def test_prompts(self) -> list[str]:
        return list(self.splits["test"]["prompt"])

    def true_reward(self, prompts: list[str], replies: list[str]) -> torch.Tensor:
        return self.reward_fn([join(p, r) for p, r in zip(prompts, replies)])


def prepare_task(profile: Profile, run_dir: str | Path | None = None, show_progress: bool = True) -> Task:
    """Review prefixes split into disjoint test / pair-validation / pair-train / SFT prompt sets, the base
    model and the ground-truth reward. The run folder is stamped with the plan: a changed plan is refused."""
    plan = profile.frontier
    if not plan:
        raise ValueError(f"profile {profile.name!r} has no frontier plan")
    config = json.loads(json.dumps({"model": profile.model, "seed": profile.seed, **plan}))
    run_dir = claim_run_dir(run_dir, profile.name, config, "plan.json", subdir="frontier")
    sizes = {name: plan[f"n_{name}"] for name in ("test", "pairs_val", "pairs_train", "sft")}
    data = load_review_prompts(plan["source"], seed=profile.seed, max_texts=sum(sizes.values()))
    if len(data) < sum(sizes.values()):
        raise ValueError(f"the review source has {len(data)} usable texts, the plan needs {sum(sizes.values())}")
    splits, start = {}, 0
    for name, n in sizes.items():
        splits[name] = data.select(range(start, start + n))
        start += n
    torch.manual_seed(profile.seed)
    model, tokenizer = load_base(profile.model, profile.device, profile.seed, [p + c for p, c in zip(data["prompt"], data["continuation"])])
    task = Task(profile, plan, run_dir, tokenizer, model, splits, ground_truth_reward(plan["reward"]), show_progress)
    if plan["source"] == "snippets":
        path = review_snippets_path()
        task.info["data"] = {"file": SNIPPETS_FILE, "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                             "origin": "vaderSentiment 3.3.2 sdist (Pang & Lee 2005 movie-review snippets)"}
    else:
        task.info["data"] = {"source": "stanfordnlp/imdb (train)"}
    task.info["sizes"] = sizes
    return task


def _continuation_data(task: Task, split: str) -> Dataset:
    """Prefix -> true continuation as tokenized SFT examples."""
    tokenized, _ = tokenize_sft(task.splits[split], task.tokenizer, "continuation", max_length=128, max_prompt_length=32)
    return tokenized


def sft_stage(task: Task):
    """SFT on true continuations of the SFT prompts (the paper fine-tunes GPT-2-large on IMDb reviews)."""
    cfg = SFTConfig(output_dir=str(task.run_dir / "sft"), seed=task.profile.seed, show_progress=task.show_progress, use_cpu=task.profile.device == "cpu", **task.plan["sft"])
    with MemoryMonitor() as mem:
        model, history, _ = train_stage(
            "sft", task.run_dir, lambda m: train_sft(m, _continuation_data(task, "sft"), _continuation_data(task, "pairs_val"), cfg, task.pad),
            lambda: copy.deepcopy(task.base_model), task.tokenizer, task.profile.device,
        )
    _record_time(task, "sft", mem)
    model.eval()
    return model, history


def _record_time(task: Task, name: str, mem: MemoryMonitor) -> None:
    """First measurement of a stage wins: a later call that only reloads does not overwrite it."""
    path = task.run_dir / "timing.json"
    timing = json.loads(path.read_text()) if path.exists() else {}
    timing.setdefault(name, mem.as_dict())
    path.write_text(json.dumps(timing, indent=1))


def timings(task: Task) -> dict:
    path = task.run_dir / "timing.json"
    return json.loads(path.read_text()) if path.exists() else {}


# ----------------------------------------------------------------------------- preference pairs from SFT samples


def pairs_stage(task: Task, sft_model) -> dict:
    """Two replies per prompt sampled from the SFT model (temperature 1); the one with the higher true reward is
    `chosen` (with `plan["draws_per_prompt"]` > 2, the best and the worst of them). Ties (equal reward, e.g. two neutral replies) carry no preference and are dropped *and counted*.
    Returns {"train": tokenized pairs, "validation": ..., "stats": counts and reward gaps, "records": texts}."""
    path = task.run_dir / "pairs.json"
    k = task.plan.get("draws_per_prompt", 2)
    if not path.exists():
        out = {"records": {}, "stats": {}}
        with MemoryMonitor() as mem:
            for split, key in (("train", "pairs_train"), ("validation", "pairs_val")):
                prompts = list(task.splits[key]["prompt"])
                draws = [generate_responses(sft_model, task.tokenizer, prompts, max_new_tokens=task.plan["max_new_tokens"], temperature=1.0,
                                            seed=task.profile.seed * 10 + d + 1, batch_size=32, show_progress=task.show_progress,
                                            return_token_ids=True) for d in range(k)]
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
                out["records"][split] = records
                gaps = [r["chosen_reward"] - r["rejected_reward"] for r in records]
                out["stats"][split] = {"prompts": len(prompts), "draws_per_prompt": k, "pairs": len(records), "ties_dropped": ties,
                                       "mean_reward_gap": sum(gaps) / max(1, len(gaps))}
        if not out["records"]["train"] or not out["records"]["validation"]:
            raise ValueError(f"no preference pairs left after dropping ties: {out['stats']}")
        path.write_text(json.dumps(out))
        _record_time(task, "pairs", mem)
    out = json.loads(path.read_text())
    prompt_ids = {split: tokenize_prompts(task.tokenizer, [r["prompt"] for r in recs]) for split, recs in out["records"].items()}
    for split, recs in out["records"].items():
        # the sampled token ids themselves, not a re-tokenization of the decoded text
        out[split] = Dataset.from_dict({
            "record_id": [r["record_id"] for r in recs], "prompt_ids": prompt_ids[split],
            "chosen_ids": [r["chosen_ids"] for r in recs], "rejected_ids": [r["rejected_ids"] for r in recs],
        })
    return out


def reference_stage(task: Task, sft_model, pairs: dict) -> dict:
    """log pi_SFT of every pair's replies, computed once (cached by model and data fingerprints)."""
    splits = {split: pairs[split] for split in ("train", "validation")}
    out = {}
    for split, data in splits.items():
        chosen, rejected = precompute_reference_logprobs(sft_model, data, task.pad, batch_size=16, cache_dir=task.run_dir / "ref_cache",
                                                         show_progress=task.show_progress)
        out[split] = with_reference_logprobs(data, chosen, rejected)
    return out


# ----------------------------------------------------------------------------- scoring a policy


def evaluate_policy(task: Task, model, sft_model, seed_offset: int = 0) -> dict:
    """Mean true reward (bootstrap 95% interval) and sequence KL(pi || pi_SFT) (mean and standard error) of
    one reply per held-out prompt sampled from `model` at temperature 1, plus reply length and examples."""
    prompts = task.test_prompts
    texts, ids = generate_responses(model, task.tokenizer, prompts, max_new_tokens=task.plan["max_new_tokens"], temperature=1.0,
                                    seed=task.profile.seed + 1000 + seed_offset, batch_size=32, show_progress=False, return_token_ids=True)
    rewards = task.true_reward(prompts, texts)
    log_ratios = sampled_log_ratios(model, sft_model, task.tokenizer, prompts, ids, batch_size=16)
    lo, hi = bootstrap_ci(rewards, seed=task.profile.seed)
    n = len(prompts)
    return {
        "reward": float(rewards.mean()), "reward_ci": [lo, hi], "kl": float(log_ratios.mean()),
        "kl_se": float(log_ratios.std() / n**0.5) if n > 1 else 0.0, "n": n,
        "reply_tokens": sum(len(x) for x in ids) / n,
        "examples": [{"prompt": prompts[i], "reply": texts[i], "reward": float(rewards[i])} for i in range(min(3, n))],
    }


def _cached_run(task: Task, name: str, train_and_eval) -> dict:
    """`runs/.../frontier/<name>/result.json` if it exists, else train, evaluate, save it and free the disk
    that checkpoints and weights took (the result keeps the history, the metrics and the timing)."""
    path = task.run_dir / name / "result.json"
    if path.exists():
        return json.loads(path.read_text())
    result = train_and_eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))
    for leftover in ("checkpoint.pt", "model", "points.json"):
        target = task.run_dir / name / leftover
        shutil.rmtree(target, ignore_errors=True) if target.is_dir() else target.unlink(missing_ok=True)
    return result


def sft_point(task: Task, sft_model) -> dict:
    """The starting point of every method: the SFT model itself (its KL to itself is 0 by construction)."""
    return _cached_run(task, "sft_eval", lambda: {"method": "SFT", **evaluate_policy(task, sft_model, sft_model)})


# ----------------------------------------------------------------------------- DPO and its variants


def dpo_run(task: Task, sft_model, ref_data: dict, beta: float, loss_type: str = "sigmoid", label_smoothing: float = 0.0,
            method: str = "DPO") -> dict:
    """DPO (or a variant) from the SFT model on the sampled pairs, then scored on held-out prompts."""
    name = f"{loss_type}_beta{beta:g}" + (f"_ls{label_smoothing:g}" if label_smoothing else "")

    def run():
        cfg = DPOConfig(output_dir=str(task.run_dir / name), seed=task.profile.seed, show_progress=task.show_progress, use_cpu=task.profile.device == "cpu", beta=beta,
                        loss_type=loss_type, label_smoothing=label_smoothing, **task.plan["dpo"])
        model = copy.deepcopy(sft_model)
        with MemoryMonitor() as mem:
            history = train_dpo(model, ref_data["train"], ref_data["validation"], cfg, task.pad)
        model.eval()
        t = time.time()
        scores = evaluate_policy(task, model, sft_model)
        return {"method": method, "loss_type": loss_type, "beta": beta, "label_smoothing": label_smoothing, **scores,
                "train": mem.as_dict(), "eval_seconds": time.time() - t, "history": history, "config": asdict(cfg)}

    return _cached_run(task, name, run)


def preferred_ft_run(task: Task, sft_model, pairs: dict) -> dict:
    """The paper's "Preferred-FT": more SFT, on the chosen replies only."""
    def run():
        cfg = SFTConfig(output_dir=str(task.run_dir / "preferred_ft"), seed=task.profile.seed, show_progress=task.show_progress, use_cpu=task.profile.device == "cpu",
                        **task.plan["preferred_ft"])
        model = copy.deepcopy(sft_model)
        with MemoryMonitor() as mem:
            history = train_sft(model, completions_from_pairs(pairs["train"]), completions_from_pairs(pairs["validation"]), cfg, task.pad)
        model.eval()
        t = time.time()
        return {"method": "Preferred-FT", **evaluate_policy(task, model, sft_model), "train": mem.as_dict(),
                "eval_seconds": time.time() - t, "history": history, "config": asdict(cfg)}

    return _cached_run(task, "preferred_ft", run)


def over_optimisation_run(task: Task, sft_model, ref_data: dict, loss_type: str, beta: float) -> dict:
    """One DPO (or IPO, ...) run trained for `plan["long_epochs"][-1]` epochs, stopped and scored after each
    entry of `long_epochs`: true reward and KL along training show whether it over-optimises."""
    name = f"long_{loss_type}_beta{beta:g}"

    def run():
        n_pairs = len(ref_data["train"])
        batch = task.plan["dpo"]["batch_size"]
        steps_per_epoch = -(-n_pairs // batch)
        overrides = {k: v for k, v in task.plan["dpo"].items() if k not in ("num_epochs", "max_steps")}
        # scored phases are kept in points.json: after an interruption they are not redone, and training
        # resumes from the checkpoint, which is never behind the last scored phase
        points_path = task.run_dir / name / "points.json"
        points = json.loads(points_path.read_text()) if points_path.exists() else []
        history, seconds = [], (points[-1]["train_seconds"] if points else 0.0)
        model = copy.deepcopy(sft_model)
        for epochs in task.plan["long_epochs"]:
            if any(p["epochs"] == epochs for p in points):
                continue
            cfg = DPOConfig(output_dir=str(task.run_dir / name), seed=task.profile.seed, show_progress=task.show_progress, use_cpu=task.profile.device == "cpu",
                            beta=beta, loss_type=loss_type, max_steps=int(epochs * steps_per_epoch), **overrides)
            with MemoryMonitor() as mem:  # resumes from the previous phase's checkpoint: one continuous run
                history = train_dpo(model, ref_data["train"], ref_data["validation"], cfg, task.pad)
            seconds += mem.seconds
            model.eval()
            evals = [h for h in history if "eval_loss" in h]
            points.append({"epochs": epochs, "steps": cfg.max_steps, **evaluate_policy(task, model, sft_model),
                           "eval": evals[-1] if evals else {}, "train_seconds": seconds})
            points_path.write_text(json.dumps(points, indent=1))
        return {"method": f"{loss_type} (long)", "loss_type": loss_type, "beta": beta, "points": points, "history": history}

    return _cached_run(task, name, run)


# ----------------------------------------------------------------------------- RLHF: reward model, PPO, best-of-N


def reward_model_stage(task: Task, sft_model, pairs: dict):
    """r_phi = the SFT model's trunk + a scalar head, trained with the Bradley-Terry loss on the same pairs.
    Returns (model, result) with its held-out pair accuracy (against the true-reward labels)."""
    folder = task.run_dir / "reward_model"
    weights, result_path = folder / "reward_model.pt", folder / "result.json"
    model = RewardModel(copy.deepcopy(sft_model))
    if weights.exists() and result_path.exists():
        model.load_state_dict(torch.load(weights))
        return model.to(task.profile.device).eval(), json.loads(result_path.read_text())
    cfg = RewardConfig(output_dir=str(folder), seed=task.profile.seed, show_progress=task.show_progress, use_cpu=task.profile.device == "cpu", **task.plan["reward_model"])
    with MemoryMonitor() as mem:
        history = train_reward_model(model, pairs["train"], pairs["validation"], cfg, task.pad)
    evals = [h for h in history if "eval_accuracy" in h]
    result = {"held_out_accuracy": evals[-1]["eval_accuracy"], "held_out_loss": evals[-1]["eval_loss"],
              "n_validation_pairs": len(pairs["validation"]), "train": mem.as_dict(), "history": history, "config": asdict(cfg)}
    tmp = weights.with_suffix(".tmp")
    torch.save(model.state_dict(), tmp)
    tmp.replace(weights)
    result_path.write_text(json.dumps(result, indent=1))
    (folder / "checkpoint.pt").unlink(missing_ok=True)
    return model.eval(), result


def ppo_run(task: Task, sft_model, reward_model, kl_coef: float, ground_truth: bool = False) -> dict:
    """PPO from the SFT model against r_phi with per-token KL penalty `kl_coef` towards the SFT model; with
    `ground_truth`, against the true reward itself (the paper's PPO-GT, an upper reference for RLHF)."""
    name = f"ppo_gt_kl{kl_coef:g}" if ground_truth else f"ppo_kl{kl_coef:g}"

    def run():
        cfg = PPOConfig(output_dir=str(task.run_dir / name), kl_coef=kl_coef, seed=task.profile.seed, show_progress=task.show_progress,
                        max_new_tokens=task.plan["max_new_tokens"], **task.plan["ppo"])
        policy = PolicyWithValue(copy.deepcopy(sft_model)).to(task.profile.device)
        prompts = list(task.splits["pairs_train"]["prompt"])  # the prompts the pairs came from
        with MemoryMonitor() as mem:
            history = train_ppo(policy, sft_model, None if ground_truth else reward_model, task.tokenizer, prompts, cfg,
                                ground_truth=task.true_reward, reward_fn=task.true_reward if ground_truth else None)
        t = time.time()
        return {"method": "PPO-GT (true reward)" if ground_truth else "PPO", "kl_coef": kl_coef, **evaluate_policy(task, policy.lm, sft_model), "train": mem.as_dict(),
                "eval_seconds": time.time() - t, "history": history, "config": asdict(cfg)}

    return _cached_run(task, name, run)


def best_of_n_stage(task: Task, sft_model, reward_model) -> list[dict]:
    """Best-of-N: N replies per held-out prompt from the SFT model, keep the one r_phi scores highest. No
    training; its KL to the SFT model is log N - (N - 1)/N (`best_of_n_kl`), and it costs N samples per prompt."""
    def run():
        n_max = max(task.plan["best_of"])
        prompts = task.test_prompts
        with MemoryMonitor() as mem:
            draws = [generate_responses(sft_model, task.tokenizer, prompts, max_new_tokens=task.plan["max_new_tokens"], temperature=1.0,
                                        seed=task.profile.seed + 5000 + k, batch_size=32, show_progress=False, return_token_ids=True)
                     for k in range(n_max)]
            pids = tokenize_prompts(task.tokenizer, prompts)
            rm = torch.stack([score_replies(reward_model, pids, ids, task.pad) for _, ids in draws], 1)  # (P, N)
            true = torch.stack([task.true_reward(prompts, texts) for texts, _ in draws], 1)
        rows = []
        for n in task.plan["best_of"]:
            pick = rm[:, :n].argmax(1)
            rewards = true[torch.arange(len(prompts)), pick]
            lo, hi = bootstrap_ci(rewards, seed=task.profile.seed)
            rows.append({"method": "Best-of-N", "n": n, "reward": float(rewards.mean()), "reward_ci": [lo, hi], "kl": best_of_n_kl(n),
                         "kl_se": 0.0, "n_prompts": len(prompts)})
        # how well the proxy tracks the truth on replies it did not train on (the SFT model's samples)
        corr = torch.corrcoef(torch.stack([rm.flatten(), true.flatten()]))[0, 1].item()
        return {"rows": rows, "sampling": mem.as_dict(), "reward_model_vs_true_correlation": corr, "n_samples": rm.numel()}

    return _cached_run(task, "best_of_n", run)


# ----------------------------------------------------------------------------- everything, for the CLI


def frontier_points(runs: list[dict]) -> dict[str, list[dict]]:
    """Runs grouped by method into (kl, reward) points sorted by KL, for the frontier plot."""
    out: dict[str, list[dict]] = {}
    for r in runs:
        out.setdefault(r["method"], []).append({k: r.get(k) for k in ("kl", "kl_se", "reward", "reward_ci", "beta", "kl_coef", "n")})
    return {m: sorted(v, key=lambda p: p["kl"]) for m, v in out.items()}


def run_frontier(profile: Profile, run_dir=None, results_dir="results", figures_dir="figures", show_progress: bool = True) -> dict:
    """Every stage of notebooks 08 and 09; saves results/frontier_<profile>.json and the figures."""
    from . import __version__

    t0 = time.time()
    task = prepare_task(profile, run_dir, show_progress)
    sft_model, sft_history = sft_stage(task)
    pairs = pairs_stage(task, sft_model)
    ref_data = reference_stage(task, sft_model, pairs)
    sft = sft_point(task, sft_model)
    dpo = [dpo_run(task, sft_model, ref_data, beta) for beta in task.plan["dpo_betas"]]
    preferred = preferred_ft_run(task, sft_model, pairs)
    reward_model, rm_result = reward_model_stage(task, sft_model, pairs)
    ppo = [ppo_run(task, sft_model, reward_model, c) for c in task.plan["kl_coefs"]]
    ppo_gt = [ppo_run(task, sft_model, None, c, ground_truth=True) for c in task.plan.get("ppo_gt_kl_coefs", ())]
    best = best_of_n_stage(task, sft_model, reward_model)
    variants = [dpo_run(task, sft_model, ref_data, v["beta"], v["loss_type"], v.get("label_smoothing", 0.0), method=v["method"])
                for v in task.plan["variants"]]
    long_runs = [over_optimisation_run(task, sft_model, ref_data, lt, b) for lt, b in task.plan["long_runs"]]
    results = {
        "profile": profile.name,
        "command": f"MINIDPO_PROFILE={profile.name} python -m minidpo frontier",
        "model": profile.model, "model_note": model_note(profile.model), "seed": profile.seed, "plan": task.plan, "data": task.info,
        "pairs": pairs["stats"], "sft": {"history": sft_history, **sft},
        "reward_model": rm_result,
        "frontier": frontier_points([sft, *dpo, preferred, *ppo, *ppo_gt, *best["rows"]]),
        "dpo": dpo, "ppo": ppo, "ppo_gt": ppo_gt, "preferred_ft": preferred, "best_of_n": best,
        "variants": frontier_points([*[r for r in dpo], *variants]), "variant_runs": variants, "long_runs": long_runs,
        "timing_s": timings(task),
        # stages are cached, so this invocation's wall time says little: the experiment's compute is the sum of
        # what each stage and run measured when it ran
        "compute_s": (sum(v["seconds"] for v in timings(task).values())
                      + rm_result["train"]["seconds"]
                      + sum(r["train"]["seconds"] + r["eval_seconds"] for r in [*dpo, preferred, *ppo, *ppo_gt, *variants])
                      + best["sampling"]["seconds"] + sum(r["points"][-1]["train_seconds"] for r in long_runs)),
        "total_s": time.time() - t0, "peak_rss_gib_this_invocation": peak_rss_gib(),  # cached stages: per-run peaks are in each run
        "environment": {"minidpo": __version__, "torch": torch.__version__, "threads": torch.get_num_threads()},
    }
    results_dir, figures_dir = Path(results_dir), Path(figures_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    write_results(results_dir / f"frontier_{profile.name}.json", results)
    figs = frontier_figures(results, figures_dir)
    results["figures"] = {k: str(v) for k, v in figs.items()}
    write_results(results_dir / f"frontier_{profile.name}.json", results)
    return results


def frontier_figures(results: dict, figures_dir="figures") -> dict[str, Path]:
    from .plots import plot_frontier, plot_over_optimisation, plot_ppo_curves

    figures_dir = Path(figures_dir)
    figures_dir.mkdir(parents=True, exist_ok=True)
    p, model = results["profile"], results["model"]
    n = results["sft"]["n"]
    paths = {
        "frontier": figures_dir / f"08_frontier_{p}.png",
        "ppo_curves": figures_dir / f"08_ppo_curves_{p}.png",
        "variants": figures_dir / f"09_variants_frontier_{p}.png",
        "over_optimisation": figures_dir / f"09_over_optimisation_{p}.png",
    }
    plot_frontier(results["frontier"], paths["frontier"], title=f"controlled sentiment, {model}, n={n} held-out prompts")
    # the same titles as notebooks 08-09, which save these files too
    ppo = results["plan"]["ppo"]
    plot_ppo_curves(results["ppo"] + results.get("ppo_gt", []), paths["ppo_curves"],
                    title=f"PPO from the SFT model ({model}); {ppo['iterations']} iterations x {ppo['rollout_batch_size']} prompts")
    plot_frontier(results["variants"], paths["variants"], title=f"DPO variants, {model}, n={n} held-out prompts")
    plot_over_optimisation(results["long_runs"], paths["over_optimisation"], title=f"training long ({model})")
    return paths

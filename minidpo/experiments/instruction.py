"""The instruction experiment (notebooks 04-07, `python -m minidpo run`): what DPO adds to its reference.

Data: the 1,094 usable instruction pairs come in two halves -- chosen = the original answer (`output`) vs a
rude rewrite of it, and a polite rewrite vs the original answer. One seeded split, stratified by half, gives
four disjoint parts: DPO train, judge train, validation, test.

Arms, all from one base model and the same data: the *base* model; the *reference* = SFT on the original
answers (`output`); *Preferred-FT* = SFT on the chosen replies (the paper's baseline); *DPO* from the
reference at each beta of the plan.

Every arm writes one reply per test and validation prompt at temperature 1, so the same samples give the
judges' verdicts and the sampled KL to the reference. Beta is chosen on validation, never on test. Every stage
is a `Run.stage` under `runs/<profile>/instruction/`, keyed by the plan entries it depends on: an interrupted
run resumes where it stopped, and a changed plan recomputes only what the change touches.
"""

from __future__ import annotations

import copy
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..data import format_prompt, load_instruction_preferences, stratified_split, tokenize_preferences, tokenize_sft
from ..evaluate import sampled_log_ratios
from ..generate import generate_responses
from ..logprobs import precompute_reference_logprobs, with_reference_logprobs
from ..models import load_model
from ..train import train_dpo, train_sft
from ..utils import derive_seed
from .profiles import InstructionPlan, Profile
from .runs import TENSORS, Run, model_codec, open_run


def dpo_arm(beta: float) -> str:
    """The name of DPO's arm at `beta` (its stage folder and results entry); the arm's record carries `beta` itself,
    which is never read back from the name."""
    return f"dpo_beta{beta:g}"


@dataclass
class InstructionExperiment:
    """What every stage shares: profile, plan, run folder, data (text and tokenized), base model, timings."""

    profile: Profile
    plan: InstructionPlan
    run: Run
    tokenizer: object
    base_model: object
    splits: dict  # split name -> Dataset of records (prompt in the model's format, instruction, input, output, ...)
    tokenized: dict  # "dpo_train"/"validation" -> pairs; "sft_reference"/"sft_preferred" -> {train, validation}
    data_report: dict
    show_progress: bool = True
    model_keys: dict = field(default_factory=dict)  # arm name -> the stage key of its model (what it depends on)
    sample_keys: dict = field(default_factory=dict)  # (split, arm) -> the stage key of its samples

    @property
    def run_dir(self) -> Path:
        return self.run.dir

    @property
    def pad(self) -> int:
        return self.tokenizer.pad_token_id

    def prompts(self, split: str) -> list[str]:
        return list(self.splits[split]["prompt"])

    def questions(self, split: str) -> list[str]:
        """The prompt as plain text (instruction and input), what the judges read."""
        return [q for q in self.splits[split]["question"]]

    def timing(self) -> dict:
        return self.run.timing()


def prepare(profile: Profile, run_dir: str | Path | None = None, show_progress: bool = True,
            plan: InstructionPlan | None = None) -> InstructionExperiment:
    """Stage 1 (notebook 04): load and validate the pairs (the 6 chosen == rejected rows dropped and counted),
    split them stratified by half, load the base model, render prompts in its format, tokenize. `plan`
    overrides the profile's plan (tests run the gpu plan's code path at a small size)."""
    plan = plan or profile.instruction
    run = open_run(run_dir, profile.name, "instruction")
    t = time.time()
    records, report = load_instruction_preferences(drop_invalid=True)
    sizes = {"test": plan.n_test, "validation": plan.n_validation, "judge_train": plan.n_judge, "dpo_train": plan.n_dpo}
    splits = stratified_split(records, sizes, by="half", seed=profile.seed)
    texts = [r["prompt"] + r["chosen"] + r["output"] for r in splits["dpo_train"]]
    model, tokenizer = load_model(profile.model, device=profile.device, seed=profile.seed, tokenizer_texts=texts)
    for name, ds in splits.items():
        splits[name] = ds.map(lambda r: {"prompt": format_prompt(tokenizer, r["instruction"], r["input"]),
                                         "question": r["instruction"] + (f"\n\n{r['input']}" if r["input"] else "")})
    lengths = dict(max_length=plan.max_length, max_prompt_length=plan.max_prompt_length)
    tokenized, counts = {}, {}
    for split in ("dpo_train", "validation"):
        tokenized[split], counts[split] = tokenize_preferences(splits[split], tokenizer, overlong="drop", **lengths)
    for arm, column in (("sft_reference", "output"), ("sft_preferred", "chosen")):
        tokenized[arm] = {}
        for s in ("dpo_train", "validation"):
            tokenized[arm][s], counts[f"{arm}/{s}"] = tokenize_sft(splits[s], tokenizer, column, **lengths)
    data_report = {"records_read": report.n_in, "records_kept": report.n_kept, "dropped": dict(report.dropped),
                   "split_sizes": {k: len(v) for k, v in splits.items()},
                   "halves_all": dict(sorted(Counter(records["half"]).items())),
                   "halves": {k: dict(sorted(Counter(v["half"]).items())) for k, v in splits.items()},
                   "tokenization": counts}
    data_report["load_and_tokenize_s"] = time.time() - t  # this invocation's (seconds; not a cached stage)
    # what every stage depends on (the device too: a model trained on a GPU computes other numbers than on a CPU)
    base_key = {"model": profile.model, "device": profile.device, "seed": profile.seed, "sizes": sizes,
                "max_length": plan.max_length, "max_prompt_length": plan.max_prompt_length}
    return InstructionExperiment(profile, plan, run, tokenizer, model, splits, tokenized, data_report, show_progress,
                                 {"base": base_key})


def _train_cfg(exp: InstructionExperiment, config, name: str, **fields):
    """The plan's training `config` for the run `name`: its folder, the profile's seed and device."""
    return replace(config, output_dir=str(exp.run.folder(name)), seed=exp.profile.seed, show_progress=exp.show_progress,
                   use_cpu=exp.profile.device == "cpu", **fields)


def _model_stage(exp: InstructionExperiment, name: str, key: dict, make_model,
                 train) -> tuple[object, list[dict], bool]:
    """A trained arm: a stage holding the model and its training history. Returns (model, history, trained now?)."""
    exp.model_keys[name] = key
    trained = []

    def compute():
        model = make_model()
        trained.append(True)
        return model, train(model)

    model, history = exp.run.stage(name, compute, key, model_codec(exp.tokenizer, exp.profile.device))
    return model, history, bool(trained)


def sft_arm(exp: InstructionExperiment, arm: str) -> tuple[object, list[dict], bool]:
    """Stage 2 (notebook 05): SFT from a copy of the base model, on the original answers (`arm="reference"`) or
    on the chosen replies (`arm="preferred_ft"`). Returns (model, history, trained now?)."""
    data = exp.tokenized["sft_reference" if arm == "reference" else "sft_preferred"]
    cfg = _train_cfg(exp, exp.plan.sft, arm)
    key = {**exp.model_keys["base"], "arm": arm, "sft": exp.plan.sft}
    train = lambda model: train_sft(model, data["dpo_train"], data["validation"], cfg, exp.pad)  # noqa: E731
    return _model_stage(exp, arm, key, lambda: copy.deepcopy(exp.base_model), train)


def reference_logprobs(exp: InstructionExperiment, reference) -> dict:
    """Stage 3: the reference's log-probs of every DPO pair (train and validation), computed once, cached."""
    def compute() -> dict:
        return {split: precompute_reference_logprobs(reference, exp.tokenized[split], exp.pad, batch_size=8,
                                                     show_progress=exp.show_progress)
                for split in ("dpo_train", "validation")}

    logps = exp.run.stage("reference_logps", compute, {"reference": exp.model_keys["reference"]}, TENSORS)
    return {split: with_reference_logprobs(exp.tokenized[split], *logps[split]) for split in logps}


def train_dpo_arm(exp: InstructionExperiment, reference, ref_data: dict, beta: float, loss_type: str = "sigmoid",
                  arm: str | None = None,
                  hyperparameters: tuple[tuple[str, float], ...] = ()) -> tuple[object, list[dict], bool]:
    """Stage 4 (notebook 06): DPO (or a `losses.LOSSES` variant, notebook 10) at `beta` from a copy of the
    reference, which is also pi_ref."""
    arm = arm or dpo_arm(beta)
    config = replace(exp.plan.dpo, beta=beta, loss_type=loss_type, **dict(hyperparameters))
    cfg = _train_cfg(exp, config, arm)
    key = {"reference": exp.model_keys["reference"], "dpo": config}
    train = lambda model: train_dpo(model, ref_data["dpo_train"], ref_data["validation"], cfg, exp.pad)  # noqa: E731
    return _model_stage(exp, arm, key, lambda: copy.deepcopy(reference), train)


def samples(exp: InstructionExperiment, arm: str, model, split: str = "test") -> dict:
    """Stage 5: one reply per prompt of `split` from `model` at the plan's temperature, with its token ids;
    a stage (`samples/<split>/<arm>`)."""
    seed = derive_seed(exp.profile.seed, "sample", split, arm)

    def sample() -> dict:
        texts, ids = generate_responses(model, exp.tokenizer, exp.prompts(split),
                                        max_new_tokens=exp.plan.max_new_tokens, temperature=exp.plan.temperature,
                                        seed=seed, batch_size=exp.plan.generation_batch_size,
                                        show_progress=exp.show_progress)
        return {"arm": arm, "split": split, "temperature": exp.plan.temperature, "seed": seed, "replies": texts,
                "token_ids": ids}

    key = {"model": exp.model_keys[arm], "split": split, "seed": seed, "temperature": exp.plan.temperature,
           "max_new_tokens": exp.plan.max_new_tokens, "batch_size": exp.plan.generation_batch_size}
    exp.sample_keys[(split, arm)] = key
    return exp.run.stage(f"samples/{split}/{arm}", sample, key)


def sampled_kl(exp: InstructionExperiment, arm: str, policy, reference, test_samples: dict) -> dict:
    """KL(pi || pi_ref) per prompt, estimated from the arm's own test samples (token ids, T = 1): the mean of
    log pi(y|x) - log pi_ref(y|x), with its standard error; a stage (`kl/<arm>`)."""
    def estimate() -> dict:
        ratios = sampled_log_ratios(policy, reference, exp.tokenizer, exp.prompts("test"), test_samples["token_ids"],
                                    batch_size=8)
        return {"kl": float(ratios.mean()), "se": float(ratios.std() / len(ratios) ** 0.5), "n": len(ratios)}

    # keyed by the samples' own key: new replies (another temperature, length, ...) give a new estimate
    key = {"policy": exp.model_keys[arm], "reference": exp.model_keys["reference"],
           "samples": exp.sample_keys[("test", arm)]}
    return exp.run.stage(f"kl/{arm}", estimate, key)


def train_all(exp: InstructionExperiment) -> dict:
    """Every arm trained (or reloaded) and sampled: {arm: {"history", "trained_now", "samples": {split: ...}}}.
    Models are released once sampled and scored, so one policy and the reference are in memory at a time."""
    arms: dict = {}
    reference, hist, now = sft_arm(exp, "reference")
    arms["reference"] = {"history": hist, "trained_now": now}
    arms["base"] = {"history": [], "trained_now": False}
    for arm, model in (("base", exp.base_model), ("reference", reference)):
        arms[arm]["samples"] = {s: samples(exp, arm, model, s) for s in ("test", "validation")}
    arms["base"]["kl"] = sampled_kl(exp, "base", exp.base_model, reference, arms["base"]["samples"]["test"])
    pft, hist, now = sft_arm(exp, "preferred_ft")
    arms["preferred_ft"] = {"history": hist, "trained_now": now,
                            "samples": {s: samples(exp, "preferred_ft", pft, s) for s in ("test", "validation")}}
    arms["preferred_ft"]["kl"] = sampled_kl(exp, "preferred_ft", pft, reference,
                                            arms["preferred_ft"]["samples"]["test"])
    del pft
    ref_data = reference_logprobs(exp, reference)
    for beta in exp.plan.betas:
        arm = dpo_arm(beta)
        model, hist, now = train_dpo_arm(exp, reference, ref_data, beta)
        arms[arm] = {"beta": beta, "history": hist, "trained_now": now,
                     "samples": {s: samples(exp, arm, model, s) for s in ("test", "validation")}}
        arms[arm]["kl"] = sampled_kl(exp, arm, model, reference, arms[arm]["samples"]["test"])
        del model
    return arms

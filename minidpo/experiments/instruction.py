"""The instruction experiment (notebooks 04-07, `python -m minidpo run`): does DPO move a model away from what the
data rejects, and further than fine-tuning on the preferred replies alone?

Data: the 1,094 usable instruction pairs come in two halves -- chosen = the original answer (`output`) vs a
rude rewrite of it, and a polite rewrite vs the original answer. One seeded split, stratified by half, gives
four disjoint parts: DPO train, judge train, validation, test.

Arms, all from one base model and the same data: the untouched *base* model; the *reference* = SFT of the base
on *both* replies of every DPO-train pair, so that it writes what the data prefers and what it rejects (its
checkpoint is the first whose validation rude rate reaches the plan's bar); *Preferred-FT* = SFT of the reference
on the chosen replies (the paper's baseline); *DPO* from the reference at each beta of the plan. DPO and
Preferred-FT are scored on the validation prompts at checkpoints through training (their trajectories: marker
rates, KL to the reference, log-probs of the validation pairs); the learning rates, the beta and the checkpoints
are chosen there (highest polite-minus-rude rate), never on test. The selected DPO arm and Preferred-FT are trained with
`plan.seeds`, and every arm writes `plan.samples_per_prompt` independently seeded replies per test prompt.

Every stage is a `Run.stage` under `runs/<profile>/instruction/`, keyed by the plan entries it depends on: an
interrupted run resumes where it stopped, and a changed plan recomputes what the change touches. A checkpoint is one
stage with its validation reading, so a changed reading (reply length, lexicons) retrains the run too.
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from datasets import concatenate_datasets

from ..data import format_prompt, load_instruction_preferences, stratified_split, tokenize_preferences, tokenize_sft
from ..evaluate import sampled_log_ratios
from ..generate import SAMPLER, generate_responses
from ..logprobs import precompute_reference_logprobs, with_reference_logprobs
from ..loop import optimizer_steps
from ..models import load_model, parked
from ..train import train_dpo, train_sft
from ..utils import derive_seed
from ..validity import flags
from .instruction_lexicons import controlled_lexicons
from .instruction_plan import InstructionPlan
from .profiles import Profile
from .runs import TENSORS, Run, model_codec, open_run


def dpo_arm(beta: float, seed: int = 0, learning_rate: float | None = None) -> str:
    """The name of DPO's run at `beta`, training seed `seed` and (when the plan searches it) `learning_rate`: its
    stage folder and trajectory entry. Without a seed or a learning rate, the name of DPO's arm at `beta`."""
    return f"dpo_beta{beta:g}" + (f"_lr{learning_rate:g}" if learning_rate else "") + (f"_seed{seed}" if seed else "")


def pft_arm(seed: int = 0, learning_rate: float | None = None) -> str:
    return "preferred_ft" + (f"_lr{learning_rate:g}" if learning_rate else "") + (f"_seed{seed}" if seed else "")


def marks(lexicons: dict, kind: str, replies: list[str]) -> list[float]:
    """Per reply, 1.0 when it holds a marker of the `kind` lexicon ("rude", "polite"), else 0.0: the one reading
    behind every rate of the experiment."""
    return [float(f) for f in flags(replies, lexicons[kind]["markers"])]


@dataclass
class InstructionExperiment:
    """What every stage shares: profile, plan, run folder, data (text and tokenized), base model, lexicons."""

    profile: Profile
    plan: InstructionPlan
    run: Run
    tokenizer: object
    base_model: object
    splits: dict  # split name -> Dataset of records (prompt in the model's format, instruction, input, output, ...)
    tokenized: dict  # "dpo_train"/"validation" -> pairs; "sft_reference"/"sft_preferred" -> {train, validation}
    data_report: dict
    lexicons: dict  # "rude"/"polite" -> {"markers", ...}: `instruction_lexicons.controlled_lexicons`
    show_progress: bool = True
    model_keys: dict = field(default_factory=dict)  # arm name -> the stage key of its model (what it depends on)

    @property
    def pad(self) -> int:
        return self.tokenizer.pad_token_id

    def prompts(self, split: str) -> list[str]:
        return list(self.splits[split]["prompt"])

    def questions(self, split: str) -> list[str]:
        """The prompt as plain text (instruction and input), what the judge reads."""
        return list(self.splits[split]["question"])

    def marks(self, replies: list[str]) -> dict[str, list[float]]:
        """Per reply, 1.0 when it holds a marker of the rude (polite) lexicon, else 0.0."""
        return {kind: marks(self.lexicons, kind, replies) for kind in self.lexicons}

    def codec(self):
        return model_codec(self.tokenizer, self.profile.device)

    def timing(self) -> dict:
        return self.run.timing()


def prepare(profile: Profile, run_dir: str | Path | None = None, show_progress: bool = True,
            plan: InstructionPlan | None = None, lexicons: dict | None = None) -> InstructionExperiment:
    """Stage 1 (notebook 04): load and validate the pairs (the 6 chosen == rejected rows dropped and counted),
    split them stratified by half, load the base model, render prompts in its format, tokenize, derive the lexicons
    (sampling the base model on the validation prompts for their control, a cached stage). `plan` overrides the
    profile's plan (tests run the gpu plan's code path at a small size); `lexicons` (a results file's, JSON values)
    replaces the derivation, so a notebook reading committed results computes no stage."""
    plan = plan or profile.instruction
    run = open_run(run_dir, profile.name, "instruction")
    t = time.time()
    records, report = load_instruction_preferences(drop_invalid=True)
    sizes = {"test": plan.n_test, "validation": plan.n_validation, "judge_train": plan.n_judge, "dpo_train": plan.n_dpo}
    splits = stratified_split(records, sizes, by="half", seed=profile.seed)
    texts = [r["prompt"] + r["chosen"] + r["rejected"] for r in splits["dpo_train"]]
    model, tokenizer = load_model(profile.model, device=profile.device, seed=profile.seed, tokenizer_texts=texts)
    for name, ds in splits.items():
        splits[name] = ds.map(lambda r: {"prompt": format_prompt(tokenizer, r["instruction"], r["input"]),
                                         "question": r["instruction"] + (f"\n\n{r['input']}" if r["input"] else "")})
    lengths = dict(max_length=plan.max_length, max_prompt_length=plan.max_prompt_length)
    tokenized, counts = {}, {}
    for split in ("dpo_train", "validation"):
        tokenized[split], counts[split] = tokenize_preferences(splits[split], tokenizer, overlong="drop", **lengths)
    tokenized["sft_reference"], tokenized["sft_preferred"] = {}, {}
    for s in ("dpo_train", "validation"):
        both = concatenate_datasets([splits[s].map(lambda r: {"reply": r["chosen"]}),
                                     splits[s].map(lambda r: {"reply": r["rejected"]})])  # each reply one SFT target
        tokenized["sft_reference"][s], counts[f"sft_reference/{s}"] = tokenize_sft(both, tokenizer, "reply", **lengths)
        tokenized["sft_preferred"][s], counts[f"sft_preferred/{s}"] = tokenize_sft(splits[s], tokenizer, "chosen",
                                                                                    **lengths)
    data_report = {"records_read": report.n_in, "records_kept": report.n_kept, "dropped": dict(report.dropped),
                   "split_sizes": {k: len(v) for k, v in splits.items()},
                   "halves_all": dict(sorted(Counter(records["half"]).items())),
                   "halves": {k: dict(sorted(Counter(v["half"]).items())) for k, v in splits.items()},
                   "output_is_chosen": sum(r["output"] == r["chosen"] for r in records),
                   "output_is_rejected": sum(r["output"] == r["rejected"] for r in records),
                   "tokenization": counts}
    data_report["load_and_tokenize_s"] = time.time() - t  # this invocation's (seconds; not a cached stage)
    # what every stage depends on (the device too: a model trained on a GPU computes other numbers than on a CPU)
    base_key = {"model": profile.model, "device": profile.device, "seed": profile.seed, "sizes": sizes,
                "max_length": plan.max_length, "max_prompt_length": plan.max_prompt_length}
    exp = InstructionExperiment(profile, plan, run, tokenizer, model, splits, tokenized, data_report, {},
                                show_progress, {"base": base_key})
    exp.lexicons = controlled_lexicons(exp) if lexicons is None else lexicons
    return exp


def _train_cfg(exp: InstructionExperiment, config, folder: Path, seed: int, **fields):
    """The plan's training `config` for one run: its folder, seed and device."""
    return replace(config, output_dir=str(folder), seed=seed, show_progress=exp.show_progress,
                   use_cpu=exp.profile.device == "cpu", **fields)


def validation_point(exp: InstructionExperiment, model, reference=None, sample_set: int = 0,
                     pairs: bool = True) -> dict:
    """A checkpoint on the validation prompts: one reply per prompt (the same sampling seed for every policy:
    common random numbers; another for each `sample_set`), each reply's rude and polite marks, and -- given the
    `reference` -- each reply's log pi(y|x) - log pi_ref(y|x) (their mean estimates KL(pi || pi_ref)) and, with
    `pairs`, the policy's mean log-probs of the validation pairs' chosen and rejected replies (displacement)."""
    model.eval()
    prompts = exp.prompts("validation")
    seed = derive_seed(exp.profile.seed, "validation", *([sample_set] if sample_set else []))
    texts, ids, logps = generate_responses(model, exp.tokenizer, prompts, max_new_tokens=exp.plan.max_new_tokens,
                                           temperature=exp.plan.temperature, seed=seed,
                                           batch_size=exp.plan.generation_batch_size, show_progress=exp.show_progress,
                                           return_logps=True)
    point = {"replies": texts, **exp.marks(texts)}
    if reference is not None:
        point["log_ratios"] = sampled_log_ratios(model, reference, exp.tokenizer, prompts, ids, batch_size=16,
                                                 policy_logps=logps).tolist()
    if reference is not None and pairs:
        chosen, rejected = precompute_reference_logprobs(model, exp.tokenized["validation"], exp.pad, batch_size=8,
                                                         show_progress=False)
        point["logps/chosen"], point["logps/rejected"] = chosen.tolist(), rejected.tolist()
    return point


def _phased(exp: InstructionExperiment, name: str, key: dict, start, budgets: tuple, data: tuple, config, seed: int,
            train, reference, scored: bool = True) -> list[dict]:
    """One training run from a copy of `start`, stopped after each budget (epochs) and scored on validation
    (`validation_point`, unless not `scored`), its weights kept at every checkpoint. Returns the points (budget,
    steps, scores)."""
    model = copy.deepcopy(start)
    steps = lambda epochs: optimizer_steps(epochs, len(data[0]), config.batch_size)  # noqa: E731

    def train_to(epochs: float, folder) -> list[dict]:
        # no validation pass inside training: `validation_point` reads the checkpoint (its pairs' log-probs too).
        # `start` (the base model or the reference) is idle while its copy trains: parked, out of memory. After the
        # last budget nothing continues the run and the phase keeps the weights: no resume checkpoint.
        with parked(start, folder):
            return train(model, data[0], None, _train_cfg(exp, config, folder, seed, max_steps=steps(epochs)),
                         exp.pad, final_checkpoint=epochs != budgets[-1])

    def score(epochs: float, history: list[dict]) -> dict:
        return {"steps": steps(epochs), **(validation_point(exp, model, reference) if scored else {})}

    # a phase is its training and its validation reading: keyed by both (a changed reading recomputes the phase)
    p = exp.plan
    key = {**key, "validation": {"max_new_tokens": p.max_new_tokens, "temperature": p.temperature, "scored": scored,
                                 "batch_size": p.generation_batch_size, "sampler": SAMPLER,
                                 "lexicons": {k: v["markers"] for k, v in exp.lexicons.items()}}}
    exp.model_keys[name] = key
    points, _ = exp.run.phases(name, key, budgets, train_to, score, keep=(model, exp.codec()))
    return points


def reference_run(exp: InstructionExperiment) -> tuple[object, dict]:
    """Stage 2 (notebook 05): SFT of the base model on both replies of the DPO-train pairs, scored on validation
    after each of `plan.reference_checkpoints` epochs. The reference is the first checkpoint whose validation rude
    rate reaches `plan.min_reference_rude_rate` (else the rudest). Returns (reference model, its record)."""
    p = exp.plan
    data = (exp.tokenized["sft_reference"]["dpo_train"], exp.tokenized["sft_reference"]["validation"])
    key = {**exp.model_keys["base"], "reference": p.reference, "data": "chosen and rejected replies"}
    points = _phased(exp, "reference", key, exp.base_model, p.reference_checkpoints, data, p.reference,
                     exp.profile.seed, train_sft, None)
    rates = [sum(pt["rude"]) / len(pt["rude"]) for pt in points]
    reached = [i for i, r in enumerate(rates) if r >= p.min_reference_rude_rate]
    chosen = reached[0] if reached else max(range(len(rates)), key=lambda i: (rates[i], i))
    record = {"checkpoints": points, "validation_rude_rate": rates, "selected_epochs": points[chosen]["budget"],
              "reached_bar": bool(reached),
              "rule": f"the first checkpoint whose validation rude rate is >= {p.min_reference_rude_rate:g}, "
                      "else the rudest"}
    exp.model_keys["reference"] = {"run": key, "epochs": points[chosen]["budget"]}
    return exp.run.phase_model("reference", points[chosen]["budget"], exp.codec()), record


def reference_logprobs(exp: InstructionExperiment, reference) -> dict:
    """Stage 3: the reference's log-probs of every DPO pair (train and validation), computed once, cached."""
    def compute() -> dict:
        return {split: precompute_reference_logprobs(reference, exp.tokenized[split], exp.pad, batch_size=8,
                                                     show_progress=exp.show_progress)
                for split in ("dpo_train", "validation")}

    logps = exp.run.stage("reference_logps", compute, {"reference": exp.model_keys["reference"]}, TENSORS)
    return {split: with_reference_logprobs(exp.tokenized[split], *logps[split]) for split in logps}


def trajectory(exp: InstructionExperiment, reference, ref_data: dict, method: str, beta: float | None = None,
               seed: int = 0, budgets: tuple | None = None, loss_type: str = "sigmoid", arm: str | None = None,
               hyperparameters: tuple = (), scored: bool = True, learning_rate: float | None = None) -> list[dict]:
    """Stage 4 (notebook 06): DPO at `beta` (`method="dpo"`, or a `losses.LOSSES` variant) or Preferred-FT
    (`method="preferred_ft"`) from the reference with training seed `seed` and `learning_rate` (default: the
    plan's config's), scored on validation after each budget (default: `plan.checkpoints` epochs)."""
    p = exp.plan
    budgets = budgets or p.checkpoints
    lr = {"learning_rate": learning_rate} if learning_rate else {}
    if method == "preferred_ft":
        arm, config, train = arm or pft_arm(seed, learning_rate), replace(p.preferred_ft, **lr), train_sft
        data = (exp.tokenized["sft_preferred"]["dpo_train"], exp.tokenized["sft_preferred"]["validation"])
    else:
        arm = arm or dpo_arm(beta, seed, learning_rate)
        config = replace(p.dpo, beta=beta, loss_type=loss_type, **lr, **dict(hyperparameters))
        data, train = (ref_data["dpo_train"], ref_data["validation"]), train_dpo
    key = {"reference": exp.model_keys["reference"], method: config, "seed": seed}
    return _phased(exp, arm, key, reference, budgets, data, config, seed, train, reference, scored)


def samples(exp: InstructionExperiment, arm: str, model, split: str = "test", sample_set: int = 0) -> dict:
    """Stage 5: one reply per prompt of `split` from `model` at the plan's temperature, with its token ids; sample
    set `k` uses the same seed for every arm (common random numbers), another for each k (`samples/<split>/<arm>/k`)."""
    seed = derive_seed(exp.profile.seed, "sample", split, sample_set)

    def sample() -> dict:
        texts, ids, logps = generate_responses(model, exp.tokenizer, exp.prompts(split),
                                               max_new_tokens=exp.plan.max_new_tokens,
                                               temperature=exp.plan.temperature, seed=seed,
                                               batch_size=exp.plan.generation_batch_size,
                                               show_progress=exp.show_progress, return_logps=True)
        return {"arm": arm, "split": split, "sample_set": sample_set, "seed": seed, "replies": texts, "token_ids": ids,
                "logps": logps.tolist()}

    key = {"model": exp.model_keys[arm], "split": split, "seed": seed, "temperature": exp.plan.temperature,
           "max_new_tokens": exp.plan.max_new_tokens, "batch_size": exp.plan.generation_batch_size,
           "sampler": SAMPLER}
    return exp.run.stage(f"samples/{split}/{arm}/{sample_set}", sample, key)


def sampled_kl(exp: InstructionExperiment, arm: str, policy, reference, test_samples: dict) -> list[float]:
    """Per test prompt, log pi(y|x) - log pi_ref(y|x) of the arm's own reply (sample set 0, T = 1): their mean
    estimates KL(pi || pi_ref); a stage (`kl/<arm>`)."""
    def estimate() -> list[float]:
        return sampled_log_ratios(policy, reference, exp.tokenizer, exp.prompts("test"), test_samples["token_ids"],
                                  batch_size=16, policy_logps=torch.tensor(test_samples["logps"])).tolist()

    # keyed by the replies themselves: whatever redrew them (seed, length, batch size, sampler) re-scores them
    drawn = hashlib.sha256(json.dumps(test_samples["token_ids"]).encode()).hexdigest()[:16]
    key = {"policy": exp.model_keys[arm], "reference": exp.model_keys["reference"], "replies": drawn}
    return exp.run.stage(f"kl/{arm}", estimate, key)

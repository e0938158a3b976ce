"""The instruction experiment's plan (notebooks 04-07) for each profile: sizes, training configs and checkpoints,
seeds, samples per prompt, the bar the reference must reach, the instruments' settings."""

from __future__ import annotations

from dataclasses import dataclass

from ..train import DPOConfig, SFTConfig


@dataclass(frozen=True)
class InstructionPlan:
    """Sizes and knobs of the instruction experiment for one profile. Training budgets are in epochs: a run is
    stopped and scored at each entry of its checkpoints (the last one ends it)."""

    n_test: int
    n_validation: int
    n_judge: int
    n_dpo: int | None  # None: every pair left after the other three splits
    betas: tuple[float, ...]
    reference: SFTConfig  # SFT of the base model on both replies of every DPO-train pair
    reference_checkpoints: tuple[float, ...]  # epochs; the first whose validation rude rate reaches the bar is kept
    preferred_ft: SFTConfig  # SFT of the reference on the chosen replies (the paper's Preferred-FT)
    dpo: DPOConfig  # every DPO run from the reference; its `beta` is unused: the runs sweep `betas`
    checkpoints: tuple[float, ...]  # epochs at which DPO and Preferred-FT are scored on validation (trajectories)
    seeds: tuple[int, ...] = (0, 1)  # training seeds of the selected DPO arm and of Preferred-FT (others: the first)
    samples_per_prompt: int = 2  # independently seeded replies per test prompt and arm (2: the A/A control)
    min_reference_rude_rate: float = 0.10  # the bar the reference must reach on validation: it writes both sides
    lexicon_precision: float = 0.95  # a marker is kept when it alone flags rewrites at this precision (judge split)
    lexicon_max_base_rate: float = 0.01  # ... and flags at most this share of the base model's validation replies
    learning_rates: tuple[float, ...] = ()  # searched on validation for DPO (first beta) and Preferred-FT; () = none
    max_length: int = 512
    max_prompt_length: int = 256
    temperature: float = 1.0  # one temperature: the samples also estimate KL(pi || pi_ref), which needs T = 1
    max_new_tokens: int = 64
    generation_batch_size: int = 32
    judge_l2_grid: tuple[float, ...] = (2e-5, 2e-4, 2e-3, 2e-2, 2e-1)  # ridge (l2 / 2) |w|^2
    judge_refits: int = 5
    sentence_encoder: str | None = None  # None: offline all-MiniLM-L6-v2

    def __post_init__(self) -> None:
        for name in ("reference_checkpoints", "checkpoints"):
            budgets = getattr(self, name)
            if not budgets or list(budgets) != sorted(set(budgets)) or budgets[0] <= 0:
                raise ValueError(f"{name} must be increasing positive epochs, got {budgets!r}")
        if self.temperature != 1.0:
            raise ValueError(f"temperature must be 1 (the replies also estimate KL(pi || pi_ref)), got "
                             f"{self.temperature}")
        if self.samples_per_prompt < 2:
            raise ValueError(f"samples_per_prompt must be >= 2 (sets 0 and 1 are the A/A control), got "
                             f"{self.samples_per_prompt}")
        if any(lr <= 0 for lr in self.learning_rates) or len(set(self.learning_rates)) != len(self.learning_rates):
            raise ValueError(f"learning_rates must be distinct positive rates, got {self.learning_rates!r}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct and at least one, got {self.seeds!r}")


_SMOKE_RUN = dict(batch_size=4, learning_rate=1e-3, warmup_steps=0, eval_every=100, save_every=100)
INSTRUCTION_PLANS = {
    "smoke": InstructionPlan(n_test=8, n_validation=8, n_judge=24, n_dpo=24, betas=(0.1, 1.0),
                             reference=SFTConfig(**_SMOKE_RUN), reference_checkpoints=(0.5, 1.0),
                             preferred_ft=SFTConfig(**_SMOKE_RUN), dpo=DPOConfig(**_SMOKE_RUN, optimizer="adamw"),
                             checkpoints=(0.5, 1.0), max_new_tokens=8, generation_batch_size=8, judge_refits=2,
                             judge_l2_grid=(2e-3, 2e-1), learning_rates=(5e-4, 1e-3)),
    # ~72 min on 2 cores: an SFT step of 8 replies ~3 s, a DPO step of 8 pairs ~6 s, 128 replies of 64 tokens ~27 s
    # (minidpo.generate), a validation reading ~70 s. The reference: the pilot gave 8 of 96 rude validation
    # replies after 2 epochs at lr 5e-5 (0 after 1 at 1e-5). DPO and Preferred-FT search lr 1e-5 and 2e-5 on
    # validation (5e-6 moved DPO only 0.25-0.85 nats in an earlier run; 2e-5 reached 8 nats at beta 0.1). Cut for
    # the 75-minute budget: one beta (0.1). A second, 0.5, at DPO's chosen rate cost 9.5 min of trajectory and
    # about 1.5 min on test; it was not the one validation chose (polite minus rude 0.46 at its best checkpoint,
    # against 0.62 for 0.1), and the gpu plan searches five.
    "cpu": InstructionPlan(n_test=128, n_validation=96, n_judge=398, n_dpo=400, betas=(0.1,),
                           reference=SFTConfig(batch_size=8, learning_rate=5e-5, warmup_steps=10, eval_every=100,
                                               save_every=25),
                           reference_checkpoints=(1.0, 2.0),
                           preferred_ft=SFTConfig(batch_size=8, learning_rate=2e-5, warmup_steps=5, eval_every=100,
                                                  save_every=25),
                           dpo=DPOConfig(batch_size=8, learning_rate=2e-5, warmup_steps=5, eval_every=100,
                                         save_every=25, optimizer="adamw"),
                           checkpoints=(0.25, 0.5, 0.75, 1.0), learning_rates=(1e-5, 2e-5),
                           generation_batch_size=64),
    "gpu": InstructionPlan(n_test=200, n_validation=96, n_judge=300, n_dpo=None,
                           betas=(0.05, 0.1, 0.25, 0.5, 1.0),
                           reference=SFTConfig(batch_size=16, learning_rate=5e-5, warmup_steps=20, eval_every=200,
                                               save_every=50),
                           reference_checkpoints=(1.0, 2.0, 3.0),
                           preferred_ft=SFTConfig(batch_size=8, learning_rate=2e-5, warmup_steps=10, eval_every=200,
                                                  save_every=50),
                           dpo=DPOConfig(batch_size=8, learning_rate=2e-5, warmup_steps=10, eval_every=200,
                                         save_every=50, optimizer="adamw"),
                           checkpoints=(0.25, 0.5, 1.0, 2.0), seeds=(0, 1, 2), samples_per_prompt=4,
                           learning_rates=(1e-5, 2e-5),
                           sentence_encoder="sentence-transformers/all-mpnet-base-v2"),
}

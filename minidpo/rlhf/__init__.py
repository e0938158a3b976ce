"""RLHF, the pipeline DPO replaces: fit a reward model to preferences, then maximise it with PPO under a KL penalty.

    1. reward model   r_phi(x, y) = w . h_last(x, y) + b, trained with the Bradley-Terry loss   (DPO eq. 2)
                      L(phi) = -E log sigma(r_phi(x, y_w) - r_phi(x, y_l))
    2. PPO            max_pi E_{y ~ pi(.|x)} [r_phi(x, y)] - beta KL(pi || pi_ref)                (DPO eq. 3)
                      the KL enters as a per-token reward -beta (log pi(y_t|.) - log pi_ref(y_t|.)), r_phi is
                      added at the last token, advantages come from GAE on a value head, and the policy
                      takes clipped-surrogate steps (Schulman et al. 2017; Ziegler et al. 2019; Stiennon et al. 2020)
    +  best-of-N      sample N replies from pi_ref, keep the one r_phi likes best (no training at all)

Three modules: `reward_model` (r_phi and its Bradley-Terry fit), `ppo_maths` (three pure functions,
`kl_penalized_rewards`, `generalized_advantages`, `ppo_loss`, used by both `train_bandit_ppo`, a one-step toy
whose optimum is the closed form of notebook 02, and `train_ppo`), `ppo` (the language-model loop); and
`best_of_n`. Names follow TRL (`kl_coef`, `cliprange`, `vf_coef`,
`objective/kl`, `objective/scores`, ...).
"""

from .best_of_n import best_of_n_distribution, best_of_n_kl
from .ppo import PolicyWithValue, PPOConfig, left_align, reply_logprobs, rollout_batch, train_ppo
from .ppo_maths import (generalized_advantages, kl_penalized_rewards, masked_mean, masked_whiten, ppo_loss,
                        train_bandit_ppo)
from .reward_model import (CalibratedReward, RewardConfig, RewardModel, calibration, reward_step, score_replies,
                           train_reward_model)

__all__ = [
    "RewardModel", "CalibratedReward", "calibration", "RewardConfig", "reward_step", "train_reward_model",
    "score_replies",
    "best_of_n_kl", "best_of_n_distribution",
    "masked_mean", "masked_whiten", "kl_penalized_rewards", "generalized_advantages", "ppo_loss", "train_bandit_ppo",
    "PolicyWithValue", "PPOConfig", "left_align", "reply_logprobs", "rollout_batch", "train_ppo",
]

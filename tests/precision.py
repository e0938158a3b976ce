"""Tolerances derived from floating-point precision, never from one machine's rounding.

Two correct computations of the same quantity (ours and TRL's, packed and padded, AVX-512 and scalar kernels,
one thread or two) round differently. How far apart they may land follows from the arithmetic, not from
what one CPU happened to print:

- one rounding moves a value by at most eps/2 of its magnitude (eps = 2**-23 for float32, 2**-52 for float64);
- a sum of n terms whose absolute values add up to M, evaluated in two orders, differs by at most
  (n - 1) * eps * M (Higham, *Accuracy and Stability of Numerical Algorithms*, eq. 4.4) and, with roundings
  that do not conspire, by about sqrt(n) * eps * M. We allow SAFETY times that typical bound.
- a network's sequence log-prob sums n token log-probs, each the log-softmax of logits that are width-d dot
  products: its roundings come from d + n accumulated terms of the order of |log p| (a typical-case budget).

A function of such quantities gets its tolerance by first-order propagation (|df/dx| times x's tolerance,
through autograd), plus one rounding of its own result.
"""

from __future__ import annotations

import math

import torch

EPS32 = torch.finfo(torch.float32).eps
EPS64 = torch.finfo(torch.float64).eps
SAFETY = 4.0


def sum_tol(abs_sum, n_terms: int = 1, eps: float = EPS32, safety: float = SAFETY):
    """Allowed |a - b| between two evaluations of a sum of `n_terms` terms with absolute values adding up to
    `abs_sum` (a number or a tensor, elementwise): safety * sqrt(n) * eps * abs_sum."""
    return safety * math.sqrt(max(n_terms, 1)) * eps * abs_sum


def logprob_tol(logps: torch.Tensor, n_tokens: int, width: int, eps: float = EPS32) -> torch.Tensor:
    """Per-sequence tolerance for log pi(y|x) summed over `n_tokens` response tokens of a model of hidden size
    `width`, computed by two different (correct) implementations. A rounding budget in the typical-case
    (sqrt(n)) regime, not a worst-case bound; SAFETY covers the gap on the models tested here."""
    return sum_tol(logps.detach().double().abs() + n_tokens, n_tokens + width, eps)


def propagated_tol(fn, inputs: list[torch.Tensor], input_tols: list[torch.Tensor], eps: float = EPS32) -> float:
    """Tolerance of the scalar fn(*inputs) given each input's elementwise tolerance: sum |d fn / d x| * tol(x)
    (first-order error propagation) plus one rounding of the result."""
    xs = [x.detach().double().clone().requires_grad_(True) for x in inputs]
    value = fn(*xs)
    grads = torch.autograd.grad(value, xs, allow_unused=True)
    spread = sum(float((g.abs() * t).sum()) for g, t in zip(grads, input_tols) if g is not None)
    return spread + sum_tol(abs(float(value)), 1, eps)


def assert_close_tol(actual: torch.Tensor, expected: torch.Tensor, tol) -> None:
    """|actual - expected| <= tol elementwise (tol a number or a tensor), with the worst offender in the message."""
    diff = (actual.detach().double() - expected.detach().double()).abs()
    tol = torch.as_tensor(tol, dtype=torch.float64).expand_as(diff)
    bad = ~(diff <= tol)  # NaN or inf fails too
    if bad.any():
        i = int((diff - tol).argmax())
        raise AssertionError(f"{int(bad.sum())} of {diff.numel()} values differ beyond their float tolerance; worst at "
                             f"{i}: {actual.flatten()[i].item()!r} vs {expected.flatten()[i].item()!r} "
                             f"(|diff| {diff.flatten()[i].item():.3g} > tol {tol.flatten()[i].item():.3g})")


def adam_divergence_bound(learning_rates, betas=(0.9, 0.999)) -> float:
    """Largest |theta_a - theta_b| two Adam runs can reach when their gradients differ only by rounding. Where a
    gradient is itself at rounding level, its sign, and so the whole step, can differ between the runs; one Adam
    step moves a coordinate by at most lr (1 - beta1) / sqrt(1 - beta2) (Kingma & Ba 2015, sec. 2.1), so two
    runs part by at most twice the sum of those steps."""
    step = max(1.0, (1 - betas[0]) / math.sqrt(1 - betas[1]))
    return 2 * step * float(sum(learning_rates))


def assert_same_adam_run(pa: torch.Tensor, pb: torch.Tensor, learning_rates) -> None:
    """Two Adam runs that differ only in rounding (summation order, batch layout): every parameter within
    `adam_divergence_bound`. Loose by design where gradients sit at rounding level; the tests pair it with the
    runs' loss trajectories, which must agree tightly."""
    assert_close_tol(pa, pb, adam_divergence_bound(learning_rates))

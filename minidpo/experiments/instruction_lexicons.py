"""The rude and polite lexicons of the instruction experiment, and the false-positive control they pass before the
run.

1. Read off the data: word 1-2-grams each half's rewrites add to the original answers (judge split), kept when each
   alone flags rewrites at precision >= `plan.lexicon_precision` against plain text -- the other half's rewrites,
   and the instructions and original answers of every split but test (so "would", "explain" or "right", which plain
   instructions hold too, drop out).
2. Checked on model replies: the base model has never seen the rewrites, so a marker it writes in more than
   `plan.lexicon_max_base_rate` of its own replies to the validation prompts marks ordinary writing, not the data's
   style ("if you", "tell you", "may" passed step 1 and flagged plain replies in an earlier run). Such markers are
   dropped, and the drop recorded. The rule is fixed before any policy is trained; test prompts are not read.

Precision and recall of the kept markers are measured on the judge split and on the held-out test pairs (rewrites
against originals of that half): the data the lexicons were chosen on, and data they were not.
"""

from __future__ import annotations

from ..generate import SAMPLER, generate_responses
from ..judges import derive_markers
from ..utils import derive_seed
from ..validity import flags, high_precision_markers, lexicon_validity

CONTROL_SAMPLE_SETS = 2  # base-model replies per validation prompt read by the control


def derive_lexicons(splits: dict, min_precision: float, base_replies: list[str] | None = None,
                    max_base_rate: float = 1.0) -> dict:
    """{"rude"|"polite": {"markers", "candidates", "validity_judge_split", "validity_test_pairs", and with
    `base_replies` "base_model_control"}}: steps 1 and 2 of the module's docstring."""
    plain = [t for s in ("judge_train", "dpo_train", "validation") for r in splits[s]
             for t in (r["output"], f"{r['instruction']} {r['input']}".strip())]
    out = {}
    halves = (("rude", "rude_rewrite", "rejected", "polite_rewrite", "chosen"),
              ("polite", "polite_rewrite", "chosen", "rude_rewrite", "rejected"))
    for kind, half, side, other_half, other_side in halves:
        def texts(split, h, column):
            return [r[column] for r in splits[split] if r["half"] == h]

        originals, rewrites = texts("judge_train", half, "output"), texts("judge_train", half, side)
        others = texts("judge_train", other_half, other_side)
        candidates = derive_markers(originals, rewrites, others)
        markers = high_precision_markers(candidates, rewrites, plain + others, min_precision)
        control = {}
        if base_replies is not None:
            rates = {m: sum(flags(base_replies, [m])) / len(base_replies) for m in markers}
            control = {"base_model_control": {
                "replies": len(base_replies), "max_base_rate": max_base_rate,
                "dropped": {m: r for m, r in rates.items() if r > max_base_rate},
                "kept_rates": {m: r for m, r in rates.items() if r <= max_base_rate}}}
            markers = [m for m in markers if rates[m] <= max_base_rate]
        out[kind] = {"markers": markers, "candidates": candidates,
                     "validity_judge_split": lexicon_validity(markers, rewrites, plain + others),
                     "validity_test_pairs": lexicon_validity(markers, texts("test", half, side),
                                                             texts("test", half, "output")), **control}
    return out


def controlled_lexicons(exp) -> dict:
    """The lexicons after the base-model control: the base model's replies to the validation prompts
    (`CONTROL_SAMPLE_SETS` sets, a cached stage) read against every marker of step 1."""
    p = exp.plan

    def sample() -> list[str]:
        return [r for k in range(CONTROL_SAMPLE_SETS)
                for r in generate_responses(exp.base_model, exp.tokenizer, exp.prompts("validation"),
                                            max_new_tokens=p.max_new_tokens, temperature=p.temperature,
                                            seed=derive_seed(exp.profile.seed, "lexicon control", k),
                                            batch_size=p.generation_batch_size, show_progress=exp.show_progress)[0]]

    key = {**exp.model_keys["base"], "sets": CONTROL_SAMPLE_SETS, "max_new_tokens": p.max_new_tokens,
           "temperature": p.temperature, "batch_size": p.generation_batch_size, "sampler": SAMPLER}
    replies = exp.run.stage("lexicon_control/base_replies", sample, key)
    return derive_lexicons(exp.splits, p.lexicon_precision, replies, p.lexicon_max_base_rate)

"""Does an instrument measure what it claims, on the kind of text it will judge? Checks for the instruction
experiment's instruments, run on model replies and not only on the data's pairs.

- `lexicon_validity`: a marker lexicon's precision (of the texts it flags, the share that carry the contrast:
  rewrites, not originals) and recall (the share of rewrites it flags), counted on the data;
- `high_precision_markers`: the markers of a lexicon that alone keep precision at or above a bar;
- `marker_phrases`, `insert_marker`, `delete_markers` (and `strip_markers`): planted edits of model replies (add
  one of the data's content-free rude phrases or polite openers, take the marker words out, or whole marked
  sentences), which an instrument must detect in the right direction;
- `short_answer` / `contains_answer`: answer containment, a content check for prompts whose reference answer
  is short enough to look for in a reply.

A control that must read "no difference" (A/A: a policy against a second sample set of itself) needs no code
of its own: it is a `stats.Comparison` of two sample sets of one model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .judges import MARKER_CLAUSE, MARKER_WORD, marker_rate


def flags(texts: list[str], markers: list[str]) -> list[bool]:
    """For each text, whether it holds at least one marker (read as `judges.marker_rate` reads them: words and
    adjacent word pairs within a clause)."""
    return [marker_rate([t], markers) > 0 for t in texts]


@dataclass(frozen=True)
class LexiconValidity:
    """How a lexicon reads the data: `precision` = flagged positives / all flagged texts, `recall` = flagged
    positives / positives, with the counts they come from."""

    precision: float
    recall: float
    flagged_positives: int
    flagged_negatives: int
    positives: int
    negatives: int


def lexicon_validity(markers: list[str], positives: list[str], negatives: list[str]) -> LexiconValidity:
    """Precision and recall of `markers` on `positives` (texts that carry the contrast, e.g. rude rewrites) and
    `negatives` (texts that do not, e.g. the original answers). No flag at all gives precision 0."""
    tp, fp = sum(flags(positives, markers)), sum(flags(negatives, markers))
    return LexiconValidity(tp / (tp + fp) if tp + fp else 0.0, tp / max(1, len(positives)), tp, fp,
                           len(positives), len(negatives))


def high_precision_markers(markers: list[str], positives: list[str], negatives: list[str],
                           min_precision: float = 0.95, min_hits: int = 3) -> list[str]:
    """The markers that, each on its own, flag at least `min_hits` positives at precision >= `min_precision`
    (e.g. drops "right", which rude rewrites add but which "right triangle" also holds), in the given order."""
    keep = []
    for m in markers:
        v = lexicon_validity([m], positives, negatives)
        if v.flagged_positives >= min_hits and v.precision >= min_precision:
            keep.append(m)
    return keep


def insert_marker(reply: str, phrase: str, where: str = "start") -> str:
    """A planted edit: `phrase` (a sentence such as "Obviously, look it up yourself.") added before or after the
    reply."""
    if where not in ("start", "end"):
        raise ValueError(f"where must be 'start' or 'end', got {where!r}")
    reply = reply.strip()
    return f"{phrase.strip()} {reply}" if where == "start" else f"{reply} {phrase.strip()}"


def strip_markers(reply: str, markers: list[str]) -> str:
    """A planted edit the other way: every sentence that holds a marker removed (the rest kept as written)."""
    sentences = re.split(r"(?<=[.!?])\s+", reply.strip())
    return " ".join(s for s in sentences if not flags([s], markers)[0])


def _covered(words: list[str], wanted: set[str]) -> list[bool]:
    """For each word of one clause, whether some marker 1-2-gram of `wanted` holds it."""
    covered = [False] * len(words)
    for n in (1, 2):
        for i in range(len(words) - n + 1):
            if " ".join(words[i:i + n]) in wanted:
                covered[i:i + n] = [True] * n
    return covered


def _clauses(text: str) -> list[tuple[int, int]]:
    """The (start, end) of each clause of `text`, split where `judges.marker_rate` splits it."""
    cuts = [0, *(x for m in MARKER_CLAUSE.finditer(text) for x in m.span()), len(text)]
    return list(zip(cuts[::2], cuts[1::2]))


def marker_phrases(texts: list[str], markers: list[str], min_words: int = 2) -> list[str]:
    """The clauses of `texts` made of marker words only -- every word inside some marker 1-2-gram -- such as
    "get it together" or "i'd be happy to help": phrases that carry the tone and no content, so planting one changes
    nothing else about a reply. Words and clauses are read as the lexicons read them. Most frequent first."""
    wanted, counts = set(markers), {}
    for text in texts:
        low = text.lower()
        for a, b in _clauses(low):
            words = MARKER_WORD.findall(low[a:b])
            if len(words) >= min_words and all(_covered(words, wanted)):
                counts[" ".join(words)] = counts.get(" ".join(words), 0) + 1
    return sorted(counts, key=lambda p: (-counts[p], p))


def delete_markers(reply: str, markers: list[str]) -> str:
    """A planted edit that keeps the content: every word inside a marker 1-2-gram (within its clause, as
    `judges.marker_rate` reads them) deleted from the reply, then the spaces and punctuation left dangling tidied."""
    low, gone = reply.lower(), []
    for a, b in _clauses(low):
        spans = [(a + m.start(), a + m.end()) for m in MARKER_WORD.finditer(low[a:b])]
        gone += [span for span, hit in zip(spans, _covered([low[x:y] for x, y in spans], set(markers))) if hit]
    for x, y in reversed(gone):
        reply = reply[:x] + reply[y:]
    reply = re.sub(r"\s+([,.!?;:])", r"\1", re.sub(r"[ \t]+", " ", reply))
    reply = re.sub(r"([,;:])(?=[,.!?;:])", "", reply)
    return re.sub(r"^[\s,.;:!?]+", "", reply).strip()


_NORMALISE = re.compile(r"[^a-z0-9]+")


def _normal(text: str) -> str:
    return " " + _NORMALISE.sub(" ", text.lower()).strip() + " "


def short_answer(answer: str, max_words: int = 4) -> str | None:
    """The answer itself when it is short enough to look for in a reply (at most `max_words` words, its final
    full stop dropped), else None: containment is only a check where the answer is a checkable fact."""
    text = answer.strip().rstrip(".")
    return text if 0 < len(text.split()) <= max_words else None


def contains_answer(reply: str, answer: str) -> bool:
    """Whether the reply contains the answer as whole words, ignoring case and punctuation."""
    return _normal(answer) in _normal(reply)

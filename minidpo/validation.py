"""Checking preference records before anything uses them: every problem names the record and the field.

A record is valid when each required field (prompt, chosen, rejected) is a non-empty string, chosen differs
from rejected (an identical pair expresses no preference) and it does not repeat an earlier record (it would
count twice in the loss). `validate_records` raises listing the bad records, or drops and counts them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Sequence

FIELDS = ("prompt", "chosen", "rejected")


class PreferenceDataError(ValueError):
    """A preference record (or file) is malformed; the message names the record and field."""



@dataclass
class ValidationReport:
    """What `validate_records` found: how many records came in and were kept, and why others were dropped."""

    source: str
    n_in: int = 0
    n_kept: int = 0
    dropped: Counter = field(default_factory=Counter)  # reason -> count
    problems: list[str] = field(default_factory=list)  # "record 122, field 'rejected': ..."

    def __str__(self) -> str:
        lines = [f"{self.source}: kept {self.n_kept} of {self.n_in} records"]
        lines += [f"  dropped {n}: {reason}" for reason, n in self.dropped.items()]
        return "\n".join(lines)


def _record_problem(record: Any, fields: Sequence[str] = FIELDS,
                    optional: Sequence[str] = ()) -> tuple[str, str] | None:
    """(field, reason) for the first problem of one record, or None if it is valid.

    `fields` are required non-empty strings, the last two being the chosen and rejected replies;
    `optional` fields may be absent, None or any string.
    """
    if not isinstance(record, dict):
        return "<record>", f"must be a mapping with keys {tuple(fields)}, got {type(record).__name__}"
    for name in fields:
        if name not in record:
            return name, "missing"
        value = record[name]
        if not isinstance(value, str):
            return name, f"must be a string, got {type(value).__name__}"
        if not value.strip():
            return name, "empty" if value == "" else "whitespace only"
    for name in optional:
        if record.get(name) is not None and not isinstance(record[name], str):
            return name, f"must be a string if given, got {type(record[name]).__name__}"
    chosen, rejected = fields[-2], fields[-1]
    if record[chosen] == record[rejected]:
        return rejected, f"identical to {chosen!r}: the pair expresses no preference"
    return None


def validate_records(
    records: Sequence[Any],
    drop_invalid: bool = False,
    source: str = "records",
    record_ids: Sequence[int] | None = None,
    fields: Sequence[str] = FIELDS,
    optional: Sequence[str] = (),
) -> tuple[list[tuple[int, dict]], ValidationReport]:
    """Check every record; raise `PreferenceDataError` listing the bad ones, or drop them when asked.

    Rules: each of `fields` (prompt/chosen/rejected) present, a string, not empty or whitespace-only,
    chosen != rejected, and no record repeating an earlier one. With `drop_invalid=True` bad records are removed and
    counted by reason in the returned report (nothing is skipped silently). Returns the kept (record id, record) pairs.
    """
    ids = list(range(len(records))) if record_ids is None else list(record_ids)
    report = ValidationReport(source=source, n_in=len(records))
    kept = []
    first_seen: dict[tuple, int] = {}  # a repeated pair would count twice in the loss
    for rid, record in zip(ids, records):
        problem = _record_problem(record, fields, optional)
        if problem is None:
            key = tuple(record[f] for f in fields)
            if key in first_seen:
                problem = "<record>", f"duplicates record {first_seen[key]} (same {', '.join(fields)})"
            else:
                first_seen[key] = rid
        if problem is None:
            kept.append((rid, record))
            continue
        name, reason = problem
        report.problems.append(f"record {rid}, field {name!r}: {reason}")
        report.dropped[f"field {name!r}: "
                       + ("duplicate of an earlier record" if reason.startswith("duplicates") else reason)] += 1
    if report.problems and not drop_invalid:
        shown = "\n  ".join(report.problems[:10])
        more = f"\n  ... and {len(report.problems) - 10} more" if len(report.problems) > 10 else ""
        raise PreferenceDataError(
            f"{len(report.problems)} invalid record(s) in {source}:\n  {shown}{more}\n"
            "Fix them, or pass drop_invalid=True to drop them with a count."
        )
    if not kept:
        raise PreferenceDataError(f"{source} has no valid records (read {len(records)})")
    report.n_kept = len(kept)
    return kept, report


"""Preference data as records: load, validate, split.

Every loader returns a `datasets.Dataset` of records in TRL's layout, `{"prompt", "chosen", "rejected"}`,
plus `record_id` (the record's index in its source) so every error can name the record.

Sources:
- `load_instruction_preferences()`: 1,100 instruction pairs (polite `chosen`, impolite `rejected`),
  prompts in the Alpaca format.
- `load_hh_rlhf()`: Anthropic HH-RLHF dialogues; the shared dialogue up to the last "Assistant:" is the
  prompt, the two last Assistant turns are `chosen` and `rejected`.
- `load_preference_records(path_or_dataset)`: any JSON / JSONL(.gz) / `datasets.Dataset` / list of dicts
  already in prompt/chosen/rejected form.

Files come from `minidpo.utils.data_file`: `$MINIDPO_DATA_DIR` when it holds them, else the cache, else
downloaded once from their public source. Validation lives in `minidpo.validation`; tokenizing and
collating in `minidpo.batching` (re-exported here: `minidpo.data.tokenize_preferences` etc. keep working).
"""

from __future__ import annotations

import gzip
import json
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch
from datasets import Dataset, DatasetDict

from .batching import (  # noqa: F401  (re-exported: the stable public names)
    collate_preferences,
    collate_sft,
    completions_from_pairs,
    length_grouped_batches,
    pair_lengths,
    tokenize_preferences,
    tokenize_prompts,
    tokenize_sft,
)
from .utils import data_file
from .validation import FIELDS, PreferenceDataError, ValidationReport, validate_records  # noqa: F401

INSTRUCTION_FILE = "instruction-data-with-preference.json"
INSTRUCTION_URL = (
    "https://raw.githubusercontent.com/rasbt/LLMs-from-scratch/main/ch07/04_preference-tuning-with-dpo/"
    "instruction-data-with-preference.json"
)
HH_FILE = "hh-rlhf-harmless-base-test.jsonl.gz"
HH_ASSISTANT = "\n\nAssistant:"


def download(url: str) -> Callable[[Path], None]:
    """A `data_file` fetcher that downloads `url`."""

    def fetch(path: Path) -> None:
        with urllib.request.urlopen(url, timeout=60) as response:
            path.write_bytes(response.read())

    return fetch


def _fetch_hh_from_hub(path: Path) -> None:
    """HH-RLHF's harmless-base test split from the Hugging Face hub, saved as the JSONL.gz `MINIDPO_DATA_DIR` holds."""
    from datasets import load_dataset

    try:
        rows = load_dataset("Anthropic/hh-rlhf", data_dir="harmless-base", split="test")
    except Exception as e:  # the hub raises many error types when offline
        raise ConnectionError(f"{type(e).__name__}: {e}") from None
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps({"chosen": row["chosen"], "rejected": row["rejected"]}) + "\n")


def _to_dataset(kept: list[tuple[int, dict]], extra: Sequence[str] = ()) -> Dataset:
    return Dataset.from_dict({"record_id": [rid for rid, _ in kept],
                              **{f: [r[f] for _, r in kept] for f in (*FIELDS, *extra)}})



# ----------------------------------------------------------------------------- loaders


def format_alpaca_prompt(instruction: str, input_text: str = "") -> str:
    """The Alpaca instruction format; the response follows the final '### Response:' line."""
    prompt = (
        "Below is an instruction that describes a task. Write a response that appropriately completes the request."
        f"\n\n### Instruction:\n{instruction}"
    )
    if input_text.strip():
        prompt += f"\n\n### Input:\n{input_text}"
    return prompt + "\n\n### Response:\n"


def format_prompt(tokenizer, instruction: str, input_text: str = "") -> str:
    """The prompt in the model's own format, the one way every experiment renders it: the tokenizer's chat
    template when it has one (one user turn, the assistant's turn opened, as TRL renders a conversational
    record's prompt), else Alpaca (`format_alpaca_prompt`). The reply then follows with one EOS (for
    SmolLM2 `<|im_end|>`, which also closes the assistant's turn)."""
    if getattr(tokenizer, "chat_template", None):
        user = instruction + (f"\n\n{input_text}" if input_text.strip() else "")
        return tokenizer.apply_chat_template([{"role": "user", "content": user}], tokenize=False,
                                             add_generation_prompt=True)
    return format_alpaca_prompt(instruction, input_text)


def load_instruction_preferences(drop_invalid: bool = False) -> tuple[Dataset, ValidationReport]:
    """The 1,100 instruction preference pairs (chosen = the politer reply), prompts in Alpaca format (render
    them for a model with `format_prompt`), with the source's `instruction`, `input` and original answer
    `output`, and `half`: the data is two halves, `"rude_rewrite"` (chosen is the original answer, rejected a
    rude rewrite of it) and `"polite_rewrite"` (chosen is a polite rewrite, rejected the original answer);
    `"other"` if neither reply is the original.

    Six rows have chosen == rejected; they raise unless `drop_invalid=True`, which drops and counts them.
    """
    path = data_file(INSTRUCTION_FILE, download(INSTRUCTION_URL), INSTRUCTION_URL)
    kept, report = validate_records(
        _read_json_or_jsonl(path), drop_invalid, path.name, fields=("instruction", "chosen", "rejected"),
        optional=("input",)
    )
    def half(row) -> str:
        output = row.get("output")
        return "rude_rewrite" if row["chosen"] == output else "polite_rewrite" if row["rejected"] == output else "other"

    formatted = [
        (rid, {"prompt": format_alpaca_prompt(row["instruction"], row.get("input") or ""), "chosen": row["chosen"],
               "rejected": row["rejected"], "instruction": row["instruction"], "input": row.get("input") or "",
               "output": row.get("output") or "", "half": half(row)})
        for rid, row in kept
    ]
    return _to_dataset(formatted, extra=("instruction", "input", "output", "half")), report


def split_hh_dialogue(chosen: str, rejected: str) -> tuple[str, str, str]:
    """Split two HH-RLHF dialogues into (prompt, chosen reply, rejected reply).

    The prompt is the dialogue up to and including the last "\\n\\nAssistant:"; both dialogues must share
    it (a few HH records do not, and are reported as invalid).
    """
    cut_c, cut_r = chosen.rfind(HH_ASSISTANT), rejected.rfind(HH_ASSISTANT)
    if cut_c < 0:
        raise PreferenceDataError("field 'chosen': no '\\n\\nAssistant:' turn in the dialogue")
    if cut_r < 0:
        raise PreferenceDataError("field 'rejected': no '\\n\\nAssistant:' turn in the dialogue")
    prompt = chosen[: cut_c + len(HH_ASSISTANT)]
    if rejected[: cut_r + len(HH_ASSISTANT)] != prompt:
        raise PreferenceDataError("field 'rejected': its dialogue does not share the chosen dialogue's prompt")
    return prompt, chosen[cut_c + len(HH_ASSISTANT) :], rejected[cut_r + len(HH_ASSISTANT) :]


def load_hh_rlhf(drop_invalid: bool = False) -> tuple[Dataset, ValidationReport]:
    """Anthropic HH-RLHF, harmless-base test split (2,312 dialogues; contains offensive text).

    Read through `data_file`; fetched once from the hub dataset `Anthropic/hh-rlhf` (data_dir="harmless-base",
    split="test") when neither `$MINIDPO_DATA_DIR` nor the cache holds it.
    """
    rows = _read_json_or_jsonl(data_file(HH_FILE, _fetch_hh_from_hub, "the Hugging Face hub (Anthropic/hh-rlhf)"))
    records: list[Any] = []
    bad: list[tuple[int, str]] = []
    for i, row in enumerate(rows):
        try:
            if not isinstance(row.get("chosen"), str) or not isinstance(row.get("rejected"), str):
                raise PreferenceDataError("fields 'chosen' and 'rejected' must be strings")
            prompt, chosen, rejected = split_hh_dialogue(row["chosen"], row["rejected"])
            records.append({"prompt": prompt, "chosen": chosen, "rejected": rejected})
        except PreferenceDataError as e:
            bad.append((i, str(e)))
            records.append(None)
    source = HH_FILE
    if bad and not drop_invalid:
        shown = "\n  ".join(f"record {i}, {msg}" for i, msg in bad[:10])
        raise PreferenceDataError(f"{len(bad)} invalid record(s) in {source}:\n  {shown}\n"
                                  "Pass drop_invalid=True to drop them.")
    good = [(i, r) for i, r in enumerate(records) if r is not None]
    kept, report = validate_records([r for _, r in good], drop_invalid, source, record_ids=[i for i, _ in good])
    report.n_in = len(rows)
    for _, msg in bad:
        report.dropped[msg] += 1
        report.problems.append(msg)
    return _to_dataset(kept), report


def _read_json_or_jsonl(path: Path) -> list[Any]:
    """Rows of a .json (a list), .jsonl or gzipped file, with errors naming the line."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    name = path.name.removesuffix(".gz")
    if name.endswith(".json"):
        try:
            rows = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as e:
            raise PreferenceDataError(f"{path}: not valid UTF-8 at byte {e.start}") from None
        except json.JSONDecodeError as e:
            raise PreferenceDataError(f"{path}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None
        if not isinstance(rows, list):
            raise PreferenceDataError(f"{path}: expected a JSON list of records, got {type(rows).__name__}")
        return rows
    rows = []
    for lineno, line in enumerate(raw.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line.decode("utf-8")))
        except UnicodeDecodeError as e:
            raise PreferenceDataError(f"{path}, line {lineno}: not valid UTF-8 at byte {e.start} of the line") from None
        except json.JSONDecodeError as e:
            raise PreferenceDataError(f"{path}, line {lineno}: not valid JSON ({e.msg}, column {e.colno})") from None
    return rows


def load_preference_records(
    source: str | Path | Dataset | Iterable[dict], drop_invalid: bool = False
) -> tuple[Dataset, ValidationReport]:
    """Records already in prompt/chosen/rejected form: a .json/.jsonl(.gz) file, a Dataset or a list of dicts."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.exists():
            raise FileNotFoundError(f"preference file {str(path)!r} does not exist")
        rows, name = _read_json_or_jsonl(path), path.name
    elif isinstance(source, Dataset):
        rows, name = list(source), "dataset"
    else:
        rows, name = list(source), "records"
    kept, report = validate_records(rows, drop_invalid, name)
    return _to_dataset(kept), report


# ----------------------------------------------------------------------------- splits


def split_dataset(ds: Dataset, n_validation: int, n_test: int, seed: int = 0,
                  n_train: int | None = None) -> DatasetDict:
    """Seeded train/validation/test split (same seed, same split). `n_train` caps the train split."""
    if n_validation + n_test >= len(ds):
        raise ValueError(f"n_validation + n_test = {n_validation + n_test} leaves no training data of {len(ds)}")
    order = torch.randperm(len(ds), generator=torch.Generator().manual_seed(seed)).tolist()
    test, val, train = order[:n_test], order[n_test : n_test + n_validation], order[n_test + n_validation :]
    if n_train is not None:
        train = train[:n_train]
    return DatasetDict(train=ds.select(train), validation=ds.select(val), test=ds.select(test))


def stratified_split(ds: Dataset, sizes: dict[str, int | None], by: str, seed: int = 0) -> dict[str, Dataset]:
    """Disjoint seeded splits of `ds` with the given sizes (in order; one size None takes what is left),
    each holding every stratum of column `by` in its share of the whole, up to one record.

    Records are ordered by a seeded shuffle within each stratum, interleaved by their relative rank (the
    i-th of n in its stratum sits at (i + 1/2) / n), then cut into consecutive slices."""
    fixed = sum(v for v in sizes.values() if v is not None)
    if sum(v is None for v in sizes.values()) > 1 or any(v is not None and v < 1 for v in sizes.values()):
        raise ValueError(f"split sizes {sizes}: each must be >= 1, and at most one None (the rest)")
    if fixed > len(ds) or (None in sizes.values() and fixed == len(ds)):
        raise ValueError(f"split sizes {sizes} add up to {fixed}, more than the {len(ds)} records allow")
    g = torch.Generator().manual_seed(seed)
    strata: dict[str, list[int]] = {}
    for i, v in enumerate(ds[by]):
        strata.setdefault(v, []).append(i)
    keyed = []
    for members in strata.values():
        perm = torch.randperm(len(members), generator=g).tolist()
        keyed += [((rank + 0.5) / len(members), members[j]) for rank, j in enumerate(perm)]
    order = [i for _, i in sorted(keyed)]
    out, start = {}, 0
    for name, n in sizes.items():
        n = len(ds) - fixed if n is None else n
        out[name] = ds.select(order[start : start + n])
        start += n
    return out


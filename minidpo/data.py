"""Preference data: load, validate, split, tokenize, collate.

Every loader returns a `datasets.Dataset` of records in TRL's layout, `{"prompt", "chosen", "rejected"}`,
plus `record_id` (the record's index in its source) so every error can name the record.

Sources:
- `load_instruction_preferences()`: 1,100 instruction pairs (polite `chosen`, impolite `rejected`),
  prompts in the Alpaca format.
- `load_hh_rlhf()`: Anthropic HH-RLHF dialogues; the shared dialogue up to the last "Assistant:" is the
  prompt, the two last Assistant turns are `chosen` and `rejected`.
- `load_preference_records(path_or_dataset)`: any JSON / JSONL(.gz) / `datasets.Dataset` / list of dicts
  already in prompt/chosen/rejected form.

Files are read from `MINIDPO_DATA_DIR` when it is set, otherwise downloaded once from their public
source into the cache (`MINIDPO_CACHE`, default ~/.cache/minidpo).

Tokenization follows TRL: the prompt is tokenized as the tokenizer does by default (so a BOS appears
exactly when the tokenizer adds one: Llama yes, GPT-2 and SmolLM2 no), each response without special
tokens, and one EOS is appended to each response so the model learns to stop.
"""

from __future__ import annotations

import gzip
import json
import os
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch
from datasets import Dataset, DatasetDict

from .models import cache_dir

FIELDS = ("prompt", "chosen", "rejected")

INSTRUCTION_FILE = "instruction-data-with-preference.json"
INSTRUCTION_URL = (
    "https://raw.githubusercontent.com/rasbt/LLMs-from-scratch/main/ch07/04_preference-tuning-with-dpo/"
    "instruction-data-with-preference.json"
)
HH_FILE = "hh-rlhf-harmless-base-test.jsonl.gz"
HH_ASSISTANT = "\n\nAssistant:"


class PreferenceDataError(ValueError):
    """A preference record (or file) is malformed; the message names the record and field."""


# ----------------------------------------------------------------------------- finding files


def data_file(filename: str, url: str | None = None) -> Path:
    """Path to a data file: `$MINIDPO_DATA_DIR/filename` if that variable is set, else a cached download."""
    local = os.environ.get("MINIDPO_DATA_DIR")
    if local:
        path = Path(local).expanduser() / filename
        if not path.exists():
            raise FileNotFoundError(f"MINIDPO_DATA_DIR={local!r} has no file {filename!r}")
        return path
    path = cache_dir() / "data" / filename
    if path.exists():
        return path
    if url is None:
        raise FileNotFoundError(f"{filename!r} is not cached and has no download URL; set MINIDPO_DATA_DIR")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".part")
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as f:
            f.write(response.read())
    except OSError as e:
        raise ConnectionError(
            f"could not download {filename!r} from {url} ({e}). Without internet access, set MINIDPO_DATA_DIR to "
            f"a folder that holds {filename!r}."
        ) from None
    os.replace(tmp, path)
    return path


# ----------------------------------------------------------------------------- validation


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


def _record_problem(record: Any, fields: Sequence[str] = FIELDS, optional: Sequence[str] = ()) -> tuple[str, str] | None:
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
    chosen != rejected, and no record repeating an earlier one. With `drop_invalid=True` bad records are removed and counted by reason in
    the returned report (nothing is skipped silently). Returns the kept (record id, record) pairs.
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
        report.dropped[f"field {name!r}: " + ("duplicate of an earlier record" if reason.startswith("duplicates") else reason)] += 1
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


def _to_dataset(kept: list[tuple[int, dict]], extra: Sequence[str] = ()) -> Dataset:
    return Dataset.from_dict({"record_id": [rid for rid, _ in kept], **{f: [r[f] for _, r in kept] for f in (*FIELDS, *extra)}})


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
        return tokenizer.apply_chat_template([{"role": "user", "content": user}], tokenize=False, add_generation_prompt=True)
    return format_alpaca_prompt(instruction, input_text)


def load_instruction_preferences(drop_invalid: bool = False) -> tuple[Dataset, ValidationReport]:
    """The 1,100 instruction preference pairs (chosen = the politer reply), prompts in Alpaca format (render
    them for a model with `format_prompt`), with the source's `instruction`, `input` and original answer
    `output`, and `half`: the data is two halves, `"rude_rewrite"` (chosen is the original answer, rejected a
    rude rewrite of it) and `"polite_rewrite"` (chosen is a polite rewrite, rejected the original answer);
    `"other"` if neither reply is the original.

    Six rows have chosen == rejected; they raise unless `drop_invalid=True`, which drops and counts them.
    """
    path = data_file(INSTRUCTION_FILE, INSTRUCTION_URL)
    kept, report = validate_records(
        _read_json_or_jsonl(path), drop_invalid, path.name, fields=("instruction", "chosen", "rejected"), optional=("input",)
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

    Reads `$MINIDPO_DATA_DIR/hh-rlhf-harmless-base-test.jsonl.gz` when set, else the hub dataset
    `Anthropic/hh-rlhf` (data_dir="harmless-base", split="test").
    """
    if os.environ.get("MINIDPO_DATA_DIR"):
        rows = _read_json_or_jsonl(data_file(HH_FILE))
    else:
        from datasets import load_dataset

        try:
            rows = list(load_dataset("Anthropic/hh-rlhf", data_dir="harmless-base", split="test"))
        except Exception as e:  # the hub raises many error types when offline
            raise ConnectionError(
                f"could not load Anthropic/hh-rlhf from the Hugging Face hub ({type(e).__name__}: {e}). Without "
                f"internet access, set MINIDPO_DATA_DIR to a folder that holds {HH_FILE!r}."
            ) from None
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
        raise PreferenceDataError(f"{len(bad)} invalid record(s) in {source}:\n  {shown}\nPass drop_invalid=True to drop them.")
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


def split_dataset(ds: Dataset, n_validation: int, n_test: int, seed: int = 0, n_train: int | None = None) -> DatasetDict:
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


# ----------------------------------------------------------------------------- tokenization


def tokenize_prompts(tokenizer, prompts: list[str]) -> list[list[int]]:
    """Prompt token ids as the tokenizer makes them by default: a BOS only if the tokenizer adds one."""
    return tokenizer(prompts)["input_ids"]


def _encode_prompts(tokenizer, prompts: list[str], max_prompt_length: int) -> tuple[list[list[int]], list[bool]]:
    """Prompt ids cut to their last `max_prompt_length` tokens (a BOS, if any, is kept), and which were cut."""
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    out, cut = [], []
    for ids in tokenize_prompts(tokenizer, prompts):
        cut.append(len(ids) > max_prompt_length)
        if len(ids) > max_prompt_length:
            keep_bos = bos is not None and ids[0] == bos and bos != eos
            ids = ids[:1] + ids[-(max_prompt_length - 1) :] if keep_bos else ids[-max_prompt_length:]
        out.append(ids)
    return out, cut


def _encode_responses(tokenizer, texts: list[str]) -> list[list[int]]:
    """Response ids without special tokens, ending in exactly one EOS."""
    if tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer has no EOS token; responses need one so the model learns to stop")
    eos = tokenizer.eos_token_id
    return [ids if ids and ids[-1] == eos else ids + [eos] for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]


def tokenize_sft(
    ds: Dataset, tokenizer, response: str = "chosen", max_length: int = 512, max_prompt_length: int = 256
) -> tuple[Dataset, dict[str, int]]:
    """Token ids for supervised fine-tuning on one reply per prompt: `prompt_ids` and `completion_ids` (column
    `response`, ending in one EOS; TRL's prompt-completion layout). Prompts are cut as in
    `tokenize_preferences`; examples still longer than `max_length` are dropped and counted."""
    if not 0 < max_prompt_length < max_length:
        raise ValueError(f"need 0 < max_prompt_length ({max_prompt_length}) < max_length ({max_length})")
    if response not in ds.column_names:
        raise ValueError(f"no column {response!r} to fine-tune on; columns: {ds.column_names}")

    def encode(batch):
        prompt_ids, cut = _encode_prompts(tokenizer, batch["prompt"], max_prompt_length)
        return {"prompt_ids": prompt_ids, "completion_ids": _encode_responses(tokenizer, batch[response]), "prompt_truncated": cut}

    keep = [c for c in ("record_id",) if c in ds.column_names]
    out = ds.map(encode, batched=True, remove_columns=[c for c in ds.column_names if c not in keep], desc="tokenizing")
    n_cut = sum(out["prompt_truncated"])
    out = out.remove_columns("prompt_truncated")
    long = {i for i, (p, c) in enumerate(zip(out["prompt_ids"], out["completion_ids"])) if len(p) + len(c) > max_length}
    out = out.select([i for i in range(len(out)) if i not in long]) if long else out
    return out, {"overlong": len(long), "prompt_truncated": n_cut}


def tokenize_preferences(
    ds: Dataset,
    tokenizer,
    max_length: int = 512,
    max_prompt_length: int = 256,
    overlong: str = "error",
) -> tuple[Dataset, dict[str, int]]:
    """Token ids for each pair: `prompt_ids`, `chosen_ids`, `rejected_ids` (each response ends in one EOS).

    Truncation keeps the response: a prompt longer than `max_prompt_length` loses its *start* (a BOS, if
    any, is kept). If prompt + the longer response still exceeds `max_length`, the pair is over-long and
    `overlong` decides: "error" raises naming the record, "drop" drops it (counted in the returned dict),
    "truncate" cuts the responses' ends (they then lose their EOS). The returned counts say how many pairs
    were over-long and how many prompts were shortened.
    """
    if overlong not in ("error", "drop", "truncate"):
        raise ValueError(f"overlong must be 'error', 'drop' or 'truncate', got {overlong!r}")
    if tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer has no EOS token; responses need one so the model learns to stop")
    if not 0 < max_prompt_length < max_length:
        raise ValueError(f"need 0 < max_prompt_length ({max_prompt_length}) < max_length ({max_length})")

    def encode(batch):
        out = {f"{name}_ids": _encode_responses(tokenizer, batch[name]) for name in ("chosen", "rejected")}
        out["prompt_ids"], out["prompt_truncated"] = _encode_prompts(tokenizer, batch["prompt"], max_prompt_length)
        return out

    tokenized = ds.map(encode, batched=True, desc="tokenizing")
    n_cut = sum(tokenized["prompt_truncated"])
    tokenized = tokenized.remove_columns("prompt_truncated")
    lengths = [
        (len(p) + len(c), len(p) + len(r))
        for p, c, r in zip(tokenized["prompt_ids"], tokenized["chosen_ids"], tokenized["rejected_ids"])
    ]
    too_long = [i for i, (lc, lr) in enumerate(lengths) if max(lc, lr) > max_length]
    counts = {"overlong": len(too_long), "prompt_truncated": n_cut}  # nothing changes silently
    if not too_long:
        return tokenized, counts
    if overlong == "error":
        i = too_long[0]
        lc, lr = lengths[i]
        name, n = ("chosen", lc) if lc >= lr else ("rejected", lr)
        raise PreferenceDataError(
            f"{len(too_long)} over-long pair(s); first: record {tokenized[i]['record_id']}, field {name!r}: "
            f"prompt + response is {n} tokens > max_length={max_length} (after cutting the prompt to "
            f"max_prompt_length={max_prompt_length}). Raise max_length, or pass overlong='drop' or 'truncate'."
        )
    if overlong == "drop":
        bad = set(too_long)
        return tokenized.select([i for i in range(len(tokenized)) if i not in bad]), counts

    def cut(row):
        room = max_length - len(row["prompt_ids"])
        return {"chosen_ids": row["chosen_ids"][:room], "rejected_ids": row["rejected_ids"][:room]}

    return tokenized.map(cut, desc="truncating"), counts


def pair_lengths(tokenized: Dataset) -> list[int]:
    """Tokens of each example's longest sequence (what padding a batch costs): prompt + the longer reply of a
    pair, or prompt + completion of an SFT example."""
    if "completion_ids" in tokenized.column_names:
        return [len(p) + len(c) for p, c in zip(tokenized["prompt_ids"], tokenized["completion_ids"])]
    return [
        len(p) + max(len(c), len(r))
        for p, c, r in zip(tokenized["prompt_ids"], tokenized["chosen_ids"], tokenized["rejected_ids"])
    ]


def completions_from_pairs(tokenized: Dataset, side: str = "chosen") -> Dataset:
    """SFT examples (`prompt_ids`, `completion_ids`) from tokenized pairs: one side of each pair (Preferred-FT
    fine-tunes on the chosen replies)."""
    keep = [c for c in ("record_id", "prompt_ids") if c in tokenized.column_names]
    return tokenized.select_columns(keep + [f"{side}_ids"]).rename_column(f"{side}_ids", "completion_ids")


# ----------------------------------------------------------------------------- batching


def _pad(seqs: list[list[int]], value: int, multiple: int | None) -> torch.Tensor:
    width = max(len(s) for s in seqs)
    if multiple:
        width = -(-width // multiple) * multiple
    out = torch.full((len(seqs), width), value, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = torch.tensor(s, dtype=torch.long)
    return out


def _collate(seqs: list[list[int]], response_masks: list[list[int]], pad_token_id: int, multiple: int | None) -> dict:
    if pad_token_id is None:
        raise ValueError("pad_token_id is None: set tokenizer.pad_token (e.g. to tokenizer.eos_token)")
    return {
        "input_ids": _pad(seqs, pad_token_id, multiple),
        "attention_mask": _pad([[1] * len(s) for s in seqs], 0, multiple),
        "response_mask": _pad(response_masks, 0, multiple),
    }


def collate_preferences(
    examples: list[dict], pad_token_id: int, pad_to_multiple_of: int | None = None
) -> dict[str, torch.Tensor]:
    """Stack chosen and rejected sequences into one right-padded batch of 2B rows: [chosen..., rejected...].

    Returns `input_ids`, `attention_mask` (1 on real tokens) and `response_mask` (1 on response tokens,
    including the EOS) -- TRL's `completion_mask` -- plus `ref_chosen_logps`/`ref_rejected_logps` when the
    examples carry precomputed reference log-probs.
    """
    seqs, resp = [], []
    for name in ("chosen_ids", "rejected_ids"):
        for ex in examples:
            seqs.append(list(ex["prompt_ids"]) + list(ex[name]))
            resp.append([0] * len(ex["prompt_ids"]) + [1] * len(ex[name]))
    batch = _collate(seqs, resp, pad_token_id, pad_to_multiple_of)
    for key in ("ref_chosen_logps", "ref_rejected_logps"):
        if key in examples[0]:
            batch[key] = torch.tensor([ex[key] for ex in examples], dtype=torch.float32)
    return batch


def collate_sft(examples: list[dict], pad_token_id: int, pad_to_multiple_of: int | None = None) -> dict[str, torch.Tensor]:
    """Prompt + completion (`tokenize_sft`'s `completion_ids`), right-padded; B rows."""
    seqs = [list(ex["prompt_ids"]) + list(ex["completion_ids"]) for ex in examples]
    resp = [[0] * len(ex["prompt_ids"]) + [1] * len(ex["completion_ids"]) for ex in examples]
    return _collate(seqs, resp, pad_token_id, pad_to_multiple_of)


def length_grouped_batches(lengths: Sequence[int], batch_size: int, seed: int, bucket: bool = True) -> list[list[int]]:
    """Shuffle, then (if `bucket`) sort within windows of 50 batches by length so each batch pads little.

    Batches are shuffled again so training does not see lengths in order. Same seed, same batches.
    The last batch may be smaller.
    """
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(lengths), generator=g).tolist()
    if bucket:
        window = 50 * batch_size
        order = [
            i for w in range(0, len(order), window) for i in sorted(order[w : w + window], key=lambda j: lengths[j])
        ]
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    perm = torch.randperm(len(batches), generator=g).tolist()
    return [batches[i] for i in perm]

"""The bad-input matrix: every way a student's data, options or machine can be wrong, and the error it gets.

One test per row (the parametrised cases below carry the row's id). Each error names the record index and
field, or the option and what is allowed, or what to do instead.

| #  | input                                   | error type            | message contains                                          |
|----|-----------------------------------------|-----------------------|-----------------------------------------------------------|
| 1  | record without `prompt`                 | PreferenceDataError   | record 1, field 'prompt': missing                         |
| 2  | `chosen` is an int                      | PreferenceDataError   | record 1, field 'chosen': must be a string, got int       |
| 3  | `rejected` is None                      | PreferenceDataError   | record 1, field 'rejected': must be a string, got NoneType|
| 4  | `chosen` is ""                          | PreferenceDataError   | record 1, field 'chosen': empty                           |
| 5  | `prompt` is whitespace only             | PreferenceDataError   | record 1, field 'prompt': whitespace only                 |
| 6  | chosen == rejected                      | PreferenceDataError   | record 1, field 'rejected': identical to 'chosen'         |
| 7  | record is a list, not a mapping         | PreferenceDataError   | record 1, field '<record>': must be a mapping             |
| 8  | the same pair twice                     | PreferenceDataError   | record 2, field '<record>': duplicates record 0           |
| 9  | empty dataset                           | PreferenceDataError   | has no valid records (read 0)                             |
| 10 | every record invalid, drop_invalid=True | PreferenceDataError   | has no valid records (read 1)                             |
| 11 | non-UTF-8 bytes in a JSONL line         | PreferenceDataError   | bad.jsonl, line 2: not valid UTF-8                        |
| 12 | truncated JSON line                     | PreferenceDataError   | bad.jsonl, line 2: not valid JSON                         |
| 13 | .json file holding an object, not a list| PreferenceDataError   | expected a JSON list of records                           |
| 14 | preference file does not exist          | FileNotFoundError     | does not exist                                            |
| 15 | MINIDPO_DATA_DIR lacks the file         | FileNotFoundError     | has no file 'instruction-data-with-preference.json'       |
| 16 | prompt + reply longer than max_length   | PreferenceDataError   | record 7, field 'chosen': prompt + response is ... > max_length=48 |
| 17 | max_prompt_length >= max_length         | ValueError            | need 0 < max_prompt_length                                |
| 18 | unknown `overlong` mode                 | ValueError            | overlong must be 'error', 'drop' or 'truncate'            |
| 19 | tokenizer without EOS                   | ValueError            | the tokenizer has no EOS token                            |
| 20 | tokenizer without pad token, collating  | ValueError            | pad_token_id is None                                      |
| 21 | beta = 0                                | ValueError            | beta must be a finite number > 0                          |
| 22 | beta < 0                                | ValueError            | beta must be a finite number > 0                          |
| 23 | learning_rate = 0                       | ValueError            | learning_rate must be a finite number > 0                 |
| 24 | learning_rate < 0                       | ValueError            | learning_rate must be a finite number > 0                 |
| 25 | batch_size = 0                          | ValueError            | batch_size must be an integer >= 1                        |
| 26 | unknown loss_type                       | ValueError            | loss_type must be one of ('sigmoid', 'ipo', 'hinge', ...  |
| 27 | label_smoothing = 0.5                   | ValueError            | label_smoothing must be in [0, 0.5)                       |
| 28 | label_smoothing < 0                     | ValueError            | label_smoothing must be in [0, 0.5)                       |
| 29 | label_smoothing with loss_type='ipo'    | ValueError            | label_smoothing only applies to loss_type='sigmoid'       |
| 30 | unknown optimizer                       | ValueError            | optimizer must be 'adamw' or 'rmsprop'                    |
| 31 | model path that does not exist          | FileNotFoundError     | model path './no/such/model' does not exist               |
| 32 | unknown MINIDPO_PROFILE                 | ValueError            | MINIDPO_PROFILE='huge' is not a profile; choose one of    |
| 33 | negative sampling temperature           | ValueError            | temperature must be >= 0                                  |
| 34 | hub unreachable: data download          | ConnectionError       | set MINIDPO_DATA_DIR                                      |
| 35 | hub unreachable: HH-RLHF from the hub   | ConnectionError       | set MINIDPO_DATA_DIR                                      |
| 36 | hub unreachable: model                  | OSError               | use the offline profile                                   |
| 37 | `--set` names a field the plan lacks    | ValueError            | DPOConfig has no field 'learnin_rate'                     |
| 38 | a loss's hyperparameter on another loss | ValueError            | rpo_alpha only applies to loss_type='rpo'                 |
| 39 | KTO on a batch without mismatched rows  | ValueError            | needs mismatched pairs: collate with                      |
| 40 | KTO with precomputed reference only     | ValueError            | needs ref_model for the mismatched pairs                  |
| 41 | Plackett-Luce with one reply per prompt | ValueError            | logratios must be (B, K) with K >= 2                      |
"""

import json

import pytest
import torch
from datasets import Dataset

from minidpo.data import (
    PreferenceDataError,
    collate_preferences,
    data_file,
    load_hh_rlhf,
    load_instruction_preferences,
    load_preference_records,
    tokenize_preferences,
)
from minidpo.generate import generate_responses
from minidpo.models import load_model, tiny_tokenizer
from minidpo.experiments.profiles import get_profile
from minidpo.experiments.settings import apply_overrides
from minidpo.losses import plackett_luce_loss
from minidpo.train import DPOConfig, DPOStep

GOOD = {"prompt": "Say hi.", "chosen": "Hello there!", "rejected": "Go away."}


def records_case(bad):
    return lambda tmp_path, monkeypatch: load_preference_records([GOOD, bad, {**GOOD, "chosen": "Hi!"}])


def file_case(name, content: bytes):
    def run(tmp_path, monkeypatch):
        (tmp_path / name).write_bytes(content)
        load_preference_records(tmp_path / name)
    return run


def tokenize_case(**kwargs):
    def run(tmp_path, monkeypatch):
        tok = tiny_tokenizer(["hello world"], vocab_size=300)
        rows = Dataset.from_list([{**GOOD, "record_id": 0}, {**GOOD, "chosen": "long " * 100, "record_id": 7}])
        tokenize_preferences(rows, tok, **{"max_length": 48, "max_prompt_length": 16, **kwargs})
    return run


def no_eos(tmp_path, monkeypatch):
    tok = tiny_tokenizer(["hello"], vocab_size=260)
    tok.eos_token = None
    tokenize_preferences(Dataset.from_list([{**GOOD, "record_id": 0}]), tok)


def no_pad(tmp_path, monkeypatch):
    collate_preferences([{"prompt_ids": [1], "chosen_ids": [2], "rejected_ids": [3]}], pad_token_id=None)


def offline_download(tmp_path, monkeypatch):
    monkeypatch.delenv("MINIDPO_DATA_DIR", raising=False)
    monkeypatch.setenv("MINIDPO_CACHE", str(tmp_path))
    monkeypatch.setattr("urllib.request.urlopen", lambda *a, **k: (_ for _ in ()).throw(OSError("unreachable")))
    load_instruction_preferences()


def offline_hh(tmp_path, monkeypatch):
    monkeypatch.delenv("MINIDPO_DATA_DIR", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    load_hh_rlhf()


def kto_without_reference(tmp_path, monkeypatch, mismatched=True):
    from minidpo.models import tiny_gpt2

    pairs = [{"prompt_ids": [5, 6], "chosen_ids": [7, 0], "rejected_ids": [8, 0], "ref_chosen_logps": -1.0,
              "ref_rejected_logps": -1.0}] * 2  # precomputed reference columns cover the pairs, not the mismatched rows
    DPOStep(DPOConfig(loss_type="kto"))(tiny_gpt2(vocab_size=16), collate_preferences(pairs, 0, mismatched=mismatched))


def offline_model(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    load_model("gpt2-medium")


def missing_data_file(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIDPO_DATA_DIR", str(tmp_path))
    data_file("instruction-data-with-preference.json")


def negative_temperature(tmp_path, monkeypatch):
    from minidpo.models import tiny_gpt2

    tok = tiny_tokenizer(["hello"], vocab_size=260)
    generate_responses(tiny_gpt2(vocab_size=len(tok)), tok, ["hi"], temperature=-0.5)


ROWS = [
    (1, records_case({"chosen": "a", "rejected": "b"}), PreferenceDataError, "record 1, field 'prompt': missing"),
    (2, records_case({"prompt": "p", "chosen": 3, "rejected": "b"}), PreferenceDataError, "record 1, field 'chosen': must be a string, got int"),
    (3, records_case({"prompt": "p", "chosen": "a", "rejected": None}), PreferenceDataError, "record 1, field 'rejected': must be a string, got NoneType"),
    (4, records_case({"prompt": "p", "chosen": "", "rejected": "b"}), PreferenceDataError, "record 1, field 'chosen': empty"),
    (5, records_case({"prompt": " \t\n", "chosen": "a", "rejected": "b"}), PreferenceDataError, "record 1, field 'prompt': whitespace only"),
    (6, records_case({"prompt": "p", "chosen": "x", "rejected": "x"}), PreferenceDataError, "record 1, field 'rejected': identical to 'chosen'"),
    (7, records_case(["p", "a", "b"]), PreferenceDataError, "record 1, field '<record>': must be a mapping"),
    (8, lambda t, m: load_preference_records([GOOD, {**GOOD, "chosen": "Hi!"}, dict(GOOD)]), PreferenceDataError, "record 2, field '<record>': duplicates record 0"),
    (9, lambda t, m: load_preference_records([]), PreferenceDataError, "has no valid records (read 0)"),
    (10, lambda t, m: load_preference_records([{"prompt": "p", "chosen": "x", "rejected": "x"}], drop_invalid=True), PreferenceDataError, "has no valid records (read 1)"),
    (11, file_case("bad.jsonl", json.dumps(GOOD).encode() + b'\n{"prompt": "caf\xe9"}\n'), PreferenceDataError, "bad.jsonl, line 2: not valid UTF-8"),
    (12, file_case("bad.jsonl", json.dumps(GOOD).encode() + b'\n{"prompt": "p", "cho\n'), PreferenceDataError, "bad.jsonl, line 2: not valid JSON"),
    (13, file_case("obj.json", json.dumps(GOOD).encode()), PreferenceDataError, "expected a JSON list of records"),
    (14, lambda t, m: load_preference_records(t / "nope.jsonl"), FileNotFoundError, "does not exist"),
    (15, missing_data_file, FileNotFoundError, "has no file 'instruction-data-with-preference.json'"),
    (16, tokenize_case(), PreferenceDataError, "record 7, field 'chosen': prompt + response is"),
    (17, tokenize_case(max_prompt_length=48), ValueError, "need 0 < max_prompt_length"),
    (18, tokenize_case(overlong="skip"), ValueError, "overlong must be 'error', 'drop' or 'truncate'"),
    (19, no_eos, ValueError, "the tokenizer has no EOS token"),
    (20, no_pad, ValueError, "pad_token_id is None"),
    (21, lambda t, m: DPOConfig(beta=0.0), ValueError, "beta must be a finite number > 0"),
    (22, lambda t, m: DPOConfig(beta=-0.1), ValueError, "beta must be a finite number > 0"),
    (23, lambda t, m: DPOConfig(learning_rate=0.0), ValueError, "learning_rate must be a finite number > 0"),
    (24, lambda t, m: DPOConfig(learning_rate=-1e-6), ValueError, "learning_rate must be a finite number > 0"),
    (25, lambda t, m: DPOConfig(batch_size=0), ValueError, "batch_size must be an integer >= 1"),
    (26, lambda t, m: DPOConfig(loss_type="dpo_typo"), ValueError, "loss_type must be one of ('sigmoid', 'ipo', 'hinge', "),
    (27, lambda t, m: DPOConfig(label_smoothing=0.5), ValueError, "label_smoothing must be in [0, 0.5)"),
    (28, lambda t, m: DPOConfig(label_smoothing=-0.1), ValueError, "label_smoothing must be in [0, 0.5)"),
    (29, lambda t, m: DPOConfig(loss_type="ipo", label_smoothing=0.1), ValueError, "label_smoothing only applies to loss_type='sigmoid'"),
    (30, lambda t, m: DPOConfig(optimizer="sgd"), ValueError, "optimizer must be 'adamw' or 'rmsprop'"),
    (31, lambda t, m: load_model("./no/such/model"), FileNotFoundError, "model path './no/such/model' does not exist"),
    (32, lambda t, m: get_profile("huge"), ValueError, "MINIDPO_PROFILE='huge' is not a profile; choose one of"),
    (33, negative_temperature, ValueError, "temperature must be >= 0"),
    (34, offline_download, ConnectionError, "set MINIDPO_DATA_DIR"),
    (35, offline_hh, ConnectionError, "set MINIDPO_DATA_DIR"),
    (36, offline_model, OSError, "use the offline profile"),
    (37, lambda t, m: apply_overrides(get_profile("smoke").instruction, ["dpo.learnin_rate=1e-6"]), ValueError,
     "DPOConfig has no field 'learnin_rate'"),
    (38, lambda t, m: DPOConfig(loss_type="sigmoid", rpo_alpha=0.5), ValueError, "rpo_alpha only applies to loss_type='rpo'"),
    (39, lambda t, m: kto_without_reference(t, m, mismatched=False), ValueError, "needs mismatched pairs: collate with"),
    (40, kto_without_reference, ValueError, "needs ref_model for the mismatched pairs"),
    (41, lambda t, m: plackett_luce_loss(torch.zeros(3, 1), 0.1), ValueError, "logratios must be (B, K) with K >= 2"),
]


@pytest.mark.parametrize("row, case, error, message", ROWS, ids=[f"row{r[0]}" for r in ROWS])
def test_bad_input_gets_a_clear_error(row, case, error, message, tmp_path, monkeypatch):
    with pytest.raises(error) as e:
        case(tmp_path, monkeypatch)
    assert message in str(e.value), f"row {row}: {e.value}"


def test_matrix_table_lists_every_row():
    assert len(ROWS) >= 25
    table_rows = [line for line in __doc__.splitlines() if line.startswith("| ") and line[2:4].strip().isdigit()]
    assert [int(line.split("|")[1]) for line in table_rows] == [r[0] for r in ROWS]


def test_duplicates_can_be_dropped_with_a_count():
    ds, report = load_preference_records([GOOD, dict(GOOD), {**GOOD, "chosen": "Hi!"}], drop_invalid=True)
    assert len(ds) == 2 and report.dropped == {"field '<record>': duplicate of an earlier record": 1}

import copy
import gzip
import json
from collections import Counter

import pytest
import torch
from datasets import Dataset

from minidpo.data import (
    PreferenceDataError,
    collate_preferences,
    collate_sft,
    data_file,
    download,
    format_alpaca_prompt,
    length_grouped_batches,
    load_hh_rlhf,
    load_instruction_preferences,
    load_preference_records,
    split_dataset,
    split_hh_dialogue,
    tokenize_preferences,
)
from minidpo.models import tiny_tokenizer

GOOD = {"prompt": "Say hi.", "chosen": "Hello there!", "rejected": "Go away."}


# ------------------------------------------------------------------ the real datasets


def test_instruction_data_six_identical_pairs_raise_by_default():
    with pytest.raises(PreferenceDataError) as e:
        load_instruction_preferences()
    msg = str(e.value)
    assert "6 invalid record(s)" in msg
    for index in (122, 226, 400, 566, 628, 676):
        assert f"record {index}, field 'rejected': identical to 'chosen'" in msg


def test_instruction_data_dropped_with_a_count():
    ds, report = load_instruction_preferences(drop_invalid=True)
    assert (report.n_in, report.n_kept, len(ds)) == (1100, 1094, 1094)
    assert sum(report.dropped.values()) == 6
    assert 122 not in set(ds["record_id"])
    row = ds[0]
    assert row["prompt"].startswith("Below is an instruction") and row["prompt"].endswith("### Response:\n")
    assert "### Input:\nfreind --> friend" in row["prompt"]


def test_alpaca_prompt_skips_empty_input():
    assert "### Input" not in format_alpaca_prompt("Do it.", "")
    assert "### Input:\nx" in format_alpaca_prompt("Do it.", "x")


def test_hh_rlhf_split_into_prompt_and_last_turn():
    with pytest.raises(PreferenceDataError, match="does not share the chosen dialogue's prompt"):
        load_hh_rlhf()
    ds, report = load_hh_rlhf(drop_invalid=True)
    assert report.n_in == 2312 and len(ds) == report.n_kept == 2312 - 9
    assert report.dropped["field 'rejected': its dialogue does not share the chosen dialogue's prompt"] == 5
    assert report.dropped["field 'chosen': whitespace only"] == 4  # an empty last Assistant turn
    row = ds[0]
    assert row["prompt"].startswith("\n\nHuman:") and row["prompt"].endswith("\n\nAssistant:")
    assert "\n\nAssistant:" not in row["chosen"] and "\n\nAssistant:" not in row["rejected"]


def test_split_hh_dialogue():
    p, c, r = split_hh_dialogue("\n\nHuman: hi\n\nAssistant: Hello!", "\n\nHuman: hi\n\nAssistant: Go away.")
    assert (p, c, r) == ("\n\nHuman: hi\n\nAssistant:", " Hello!", " Go away.")
    with pytest.raises(PreferenceDataError, match="field 'rejected'"):
        split_hh_dialogue("\n\nHuman: a\n\nAssistant: x", "\n\nHuman: b")


# ------------------------------------------------------------------ validation: one test per rule


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"chosen": "a", "rejected": "b"}, "record 1, field 'prompt': missing"),
        ({"prompt": "p", "chosen": 3, "rejected": "b"}, "record 1, field 'chosen': must be a string, got int"),
        ({"prompt": "p", "chosen": "a", "rejected": None}, "record 1, field 'rejected': must be a string, got NoneType"),
        ({"prompt": "p", "chosen": "", "rejected": "b"}, "record 1, field 'chosen': empty"),
        ({"prompt": " \n\t", "chosen": "a", "rejected": "b"}, "record 1, field 'prompt': whitespace only"),
        ({"prompt": "p", "chosen": "same", "rejected": "same"}, "record 1, field 'rejected': identical to 'chosen'"),
        (["p", "a", "b"], "record 1, field '<record>': must be a mapping"),
    ],
)
def test_each_validation_rule_names_record_and_field(bad, message):
    other = {**GOOD, "chosen": "Hi!"}
    with pytest.raises(PreferenceDataError) as e:
        load_preference_records([GOOD, bad, other])
    assert message in str(e.value)
    ds, report = load_preference_records([GOOD, bad, other], drop_invalid=True)
    assert len(ds) == 2 and sum(report.dropped.values()) == 1 and list(ds["record_id"]) == [0, 2]


def test_all_invalid_is_an_error():
    with pytest.raises(PreferenceDataError, match="no valid records"):
        load_preference_records([{"prompt": "p", "chosen": "x", "rejected": "x"}], drop_invalid=True)


def test_loads_jsonl_gz_json_and_dataset(tmp_path):
    rows = [GOOD, {**GOOD, "chosen": "Hi!"}]
    (tmp_path / "a.json").write_text(json.dumps(rows))
    with gzip.open(tmp_path / "a.jsonl.gz", "wt") as f:
        f.write("\n".join(json.dumps(r) for r in rows) + "\n")
    for source in (tmp_path / "a.json", tmp_path / "a.jsonl.gz", Dataset.from_list(rows), rows):
        ds, _ = load_preference_records(source)
        assert list(ds["chosen"]) == ["Hello there!", "Hi!"]


def test_corrupt_and_non_utf8_jsonl_lines_are_named(tmp_path):
    (tmp_path / "bad.jsonl").write_text(json.dumps(GOOD) + "\n" + '{"prompt": "p", "chosen"\n')
    with pytest.raises(PreferenceDataError, match=r"bad.jsonl, line 2: not valid JSON"):
        load_preference_records(tmp_path / "bad.jsonl")
    (tmp_path / "latin1.jsonl").write_bytes(json.dumps(GOOD).encode() + b'\n{"prompt": "caf\xe9"}\n')
    with pytest.raises(PreferenceDataError, match=r"latin1.jsonl, line 2: not valid UTF-8"):
        load_preference_records(tmp_path / "latin1.jsonl")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_preference_records(tmp_path / "nope.jsonl")


def test_missing_local_file_and_offline_download_give_clear_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIDPO_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MINIDPO_CACHE", str(tmp_path / "cache"))

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr("urllib.request.urlopen", offline)
    with pytest.raises(ConnectionError, match=r"has no file 'instruction-data-with-preference.json', and fetching it from https"):
        load_instruction_preferences()
    assert not list((tmp_path / "cache").rglob("*.part"))  # nothing half-written is left behind
    monkeypatch.delenv("MINIDPO_DATA_DIR")
    with pytest.raises(ConnectionError, match="set MINIDPO_DATA_DIR"):
        data_file("x.json", download("https://example.invalid/x.json"))
    with pytest.raises(FileNotFoundError, match="no public source"):
        data_file("x.json")


def test_one_rule_for_data_files(tmp_path, monkeypatch):
    """$MINIDPO_DATA_DIR when it holds the file, else the cache, else fetched once into the cache."""
    local, cache = tmp_path / "local", tmp_path / "cache"
    local.mkdir()
    monkeypatch.setenv("MINIDPO_DATA_DIR", str(local))
    monkeypatch.setenv("MINIDPO_CACHE", str(cache))
    fetched = []

    def fetch(path):
        fetched.append(path)
        path.write_text("from the source")

    assert data_file("a.txt", fetch).read_text() == "from the source"  # fetched into the cache
    assert data_file("a.txt", fetch) == cache / "data" / "a.txt" and len(fetched) == 1  # once
    (local / "a.txt").write_text("local copy")
    assert data_file("a.txt", fetch) == local / "a.txt"  # the data folder wins


# ------------------------------------------------------------------ splits


def test_split_is_seeded_disjoint_and_sized(records):
    a = split_dataset(records, 4, 5, seed=0)
    b = split_dataset(records, 4, 5, seed=0)
    c = split_dataset(records, 4, 5, seed=1)
    ids = {k: list(a[k]["record_id"]) for k in a}
    assert (len(ids["train"]), len(ids["validation"]), len(ids["test"])) == (15, 4, 5)
    assert len(set().union(*ids.values())) == 24
    assert ids == {k: list(b[k]["record_id"]) for k in b}
    assert ids != {k: list(c[k]["record_id"]) for k in c}
    assert len(split_dataset(records, 4, 5, seed=0, n_train=7)["train"]) == 7
    with pytest.raises(ValueError, match="leaves no training data"):
        split_dataset(records, 12, 12)


# ------------------------------------------------------------------ tokenization


def test_eos_appended_once_no_bos_for_gpt2_style(tiny, tokenized, records):
    tok = tiny[1]
    eos = tok.eos_token_id
    for row, rec in zip(tokenized, records):
        for name in ("chosen_ids", "rejected_ids"):
            assert row[name][-1] == eos and row[name].count(eos) == 1
        assert row["prompt_ids"][0] != tok.bos_token_id  # GPT-2 style tokenizers add no BOS
        assert tok.decode(row["prompt_ids"] + row["chosen_ids"]) == rec["prompt"] + rec["chosen"] + tok.eos_token
    # a response that already ends in EOS gets no second one
    ds = Dataset.from_list([{**GOOD, "chosen": "Hello" + tok.eos_token, "record_id": 0}])
    out, _ = tokenize_preferences(ds, tok)
    assert out[0]["chosen_ids"].count(eos) == 1


def test_bos_added_once_when_the_tokenizer_adds_it():
    from tokenizers import processors

    tok = tiny_tokenizer(["hello world"], vocab_size=300)
    tok.add_special_tokens({"bos_token": "<s>"})
    tok.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", tok.convert_tokens_to_ids("<s>"))]
    )
    assert tok("hi")["input_ids"][0] == tok.bos_token_id
    ds = Dataset.from_list([{**GOOD, "prompt": "hello " * 50, "record_id": 0}])
    out, _ = tokenize_preferences(ds, tok, max_length=64, max_prompt_length=16)
    p = out[0]["prompt_ids"]
    assert p[0] == tok.bos_token_id and p.count(tok.bos_token_id) == 1 and len(p) == 16
    assert tok.bos_token_id not in out[0]["chosen_ids"]


def test_long_prompts_lose_their_start_not_the_response(tiny):
    tok = tiny[1]
    ds = Dataset.from_list([{"prompt": "word " * 200 + "END:", "chosen": "yes", "rejected": "no", "record_id": 0}])
    out, counts = tokenize_preferences(ds, tok, max_length=40, max_prompt_length=30)
    assert len(out[0]["prompt_ids"]) == 30 and tok.decode(out[0]["prompt_ids"]).endswith("END:")
    assert tok.decode(out[0]["chosen_ids"]) == "yes" + tok.eos_token and counts == {"overlong": 0, "prompt_truncated": 1}


def test_overlong_pairs_error_drop_or_truncate(tiny):
    tok = tiny[1]
    rows = [{**GOOD, "record_id": 0}, {**GOOD, "chosen": "long " * 100, "record_id": 7}]
    ds = Dataset.from_list(rows)
    with pytest.raises(PreferenceDataError, match=r"record 7, field 'chosen'.*> max_length=48"):
        tokenize_preferences(ds, tok, max_length=48, max_prompt_length=16)
    dropped, counts = tokenize_preferences(ds, tok, max_length=48, max_prompt_length=16, overlong="drop")
    assert len(dropped) == 1 and counts["overlong"] == 1
    cut, _ = tokenize_preferences(ds, tok, max_length=48, max_prompt_length=16, overlong="truncate")
    assert len(cut[1]["prompt_ids"]) + len(cut[1]["chosen_ids"]) == 48


# ------------------------------------------------------------------ collation


def test_collate_layout_masks_and_round_trip(tiny, tokenized, records):
    tok = tiny[1]
    ex = [tokenized[i] for i in range(3)]
    b = collate_preferences(ex, tok.pad_token_id)
    assert b["input_ids"].shape[0] == 6  # [chosen x3; rejected x3]
    for i in range(3):
        for j, name in ((i, "chosen"), (i + 3, "rejected")):
            n = int(b["attention_mask"][j].sum())
            assert b["attention_mask"][j, :n].all() and not b["attention_mask"][j, n:].any()  # right padding
            resp = b["input_ids"][j][b["response_mask"][j].bool()].tolist()
            assert tok.decode(resp) == records[i][name] + tok.eos_token
            assert tok.decode(b["input_ids"][j, :n].tolist()) == records[i]["prompt"] + records[i][name] + tok.eos_token
    sft = collate_sft([{"prompt_ids": e["prompt_ids"], "completion_ids": e["chosen_ids"]} for e in ex], tok.pad_token_id)
    assert torch.equal(sft["input_ids"], b["input_ids"][:3, : sft["input_ids"].shape[1]])
    with pytest.raises(ValueError, match="pad_token_id is None"):
        collate_preferences(ex, None)


def test_length_grouped_batches_cover_every_example_once():
    lengths = [5, 90, 12, 33, 7, 64, 2, 48, 17, 80, 3]
    batches = length_grouped_batches(lengths, 3, seed=0)
    assert sorted(i for b in batches for i in b) == list(range(11))
    assert batches == length_grouped_batches(lengths, 3, seed=0)
    assert batches != length_grouped_batches(lengths, 3, seed=1)


def test_instruction_file_problems_name_its_own_fields(tmp_path, monkeypatch):
    rows = [{"instruction": "Say hi.", "input": "", "chosen": "Hello!", "rejected": "No."},
            {"input": "", "chosen": "Hello!", "rejected": "No."},
            {"instruction": "Say hi.", "input": 3, "chosen": "Hello!", "rejected": "No."}]
    (tmp_path / "instruction-data-with-preference.json").write_text(json.dumps(rows))
    monkeypatch.setenv("MINIDPO_DATA_DIR", str(tmp_path))
    with pytest.raises(PreferenceDataError) as e:
        load_instruction_preferences()
    assert "record 1, field 'instruction': missing" in str(e.value)
    assert "record 2, field 'input': must be a string if given, got int" in str(e.value)
    ds, report = load_instruction_preferences(drop_invalid=True)
    assert len(ds) == 1 and report.n_kept == 1


def test_the_instruction_data_is_two_halves():
    from minidpo.data import load_instruction_preferences

    ds, _ = load_instruction_preferences(drop_invalid=True)
    halves = Counter(ds["half"])
    assert halves == {"rude_rewrite": 556, "polite_rewrite": 538}  # counted on the file: see DESIGN.md
    for r in ds.select(range(50)):
        original = r["chosen"] if r["half"] == "rude_rewrite" else r["rejected"]
        assert original == r["output"]


def test_stratified_split_is_disjoint_seeded_and_keeps_each_half_in_its_share():
    from minidpo.data import load_instruction_preferences, stratified_split

    ds, _ = load_instruction_preferences(drop_invalid=True)
    sizes = {"test": 200, "validation": 96, "judge_train": 398, "dpo_train": None}
    a = stratified_split(ds, sizes, by="half", seed=0)
    ids = [set(a[k]["record_id"]) for k in sizes]
    assert sum(map(len, ids)) == len(ds) and len(set().union(*ids)) == len(ds)  # disjoint, complete
    assert len(a["dpo_train"]) == len(ds) - 694
    share = 556 / 1094
    for name, split in a.items():
        assert abs(Counter(split["half"])["rude_rewrite"] - share * len(split)) <= 1, name
    assert a["test"]["record_id"] == stratified_split(ds, sizes, by="half", seed=0)["test"]["record_id"]
    assert a["test"]["record_id"] != stratified_split(ds, sizes, by="half", seed=1)["test"]["record_id"]
    with pytest.raises(ValueError, match="more than the"):
        stratified_split(ds, {"a": 2000}, by="half")


def test_format_prompt_uses_the_chat_template_when_there_is_one(tiny):
    from minidpo.data import format_alpaca_prompt, format_prompt

    tok = tiny[1]
    assert not getattr(tok, "chat_template", None)
    assert format_prompt(tok, "Add 2 and 3.", "") == format_alpaca_prompt("Add 2 and 3.")
    chat = copy.deepcopy(tok)
    chat.chat_template = "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}</s>{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}"
    assert format_prompt(chat, "Add 2 and 3.", "Use words.") == "<user>Add 2 and 3.\n\nUse words.</s><assistant>"


def test_tokenize_sft_gives_prompt_and_completion_with_one_eos(records, tiny):
    from minidpo.data import completions_from_pairs, tokenize_sft

    tok = tiny[1]
    sft, counts = tokenize_sft(records.select(range(4)), tok, "chosen", max_length=512, max_prompt_length=384)
    pairs, _ = tokenize_preferences(records.select(range(4)), tok, max_length=512, max_prompt_length=384)
    assert counts == {"overlong": 0, "prompt_truncated": 0} and set(sft.column_names) == {"record_id", "prompt_ids", "completion_ids"}
    assert sft["completion_ids"] == pairs["chosen_ids"] and sft["prompt_ids"] == pairs["prompt_ids"]
    assert completions_from_pairs(pairs)["completion_ids"] == sft["completion_ids"]
    assert all(c.count(tok.eos_token_id) == 1 and c[-1] == tok.eos_token_id for c in sft["completion_ids"])
    short, counts = tokenize_sft(records.select(range(4)), tok, "chosen", max_length=20, max_prompt_length=10)
    assert counts["overlong"] == 4 - len(short) and all(len(p) + len(c) <= 20 for p, c in zip(short["prompt_ids"], short["completion_ids"]))
    with pytest.raises(ValueError, match="no column 'output'"):
        tokenize_sft(records.select(range(2)).remove_columns("output"), tok, "output")

"""`python -m minidpo reproduce`: a rerun's results compared leaf by leaf with the committed ones.

| test | mutation it catches |
|---|---|
| test_an_identical_rerun_is_exact | timings or the environment counted as results (a rerun never "exact") |
| test_rounding_is_close_but_not_identical | "identical" computed with a tolerance, or "close" without one |
| test_a_changed_number_is_neither_and_is_listed | a real difference hidden (not listed, or counted as close) |
| test_leaves_on_one_side_only_are_named | a missing or new result passing silently |
| test_the_command_writes_the_check_and_fails_on_a_difference | the exit status ignoring differences; a leaf's
path written with a leading "/" (the results serialiser takes it for a file and keeps its last name only) |
| test_verdicts_are_counted_apart_and_a_changed_one_is_named | a changed claim lost among the numbers |
"""

import copy
import json
import os

import pytest

from minidpo.experiments.reproduce import compare_results, main

COMMITTED = {"command": "python -m minidpo run", "compute_s": 4469.6, "environment": {"cpu": "AMD EPYC"},
             "arms": {"dpo": {"rude_rate": {"estimate": 0.01171875, "low": 0.0019, "high": 0.0254, "n": 128}},
                      "reference": {"rude_rate": {"estimate": 0.125, "low": 0.082, "high": 0.168, "n": 128}}},
             "selection": {"selected_beta": 0.1, "rule": "highest validation polite minus rude"},
             "timing": {"sft": 67.2}, "stage_seconds": 12.0}


def test_an_identical_rerun_is_exact():
    rerun = copy.deepcopy(COMMITTED)
    rerun.update(compute_s=3900.0, timing={"sft": 60.0}, stage_seconds=11.0, environment={"cpu": "Intel Xeon"})
    check = compare_results(COMMITTED, rerun)
    assert check.exact and check.compared == check.identical == check.close == 10
    assert check.max_abs_difference == 0.0 and check.largest_differences == ()


def test_rounding_is_close_but_not_identical():
    rerun = copy.deepcopy(COMMITTED)
    rerun["arms"]["dpo"]["rude_rate"]["low"] = 0.0019 * (1 + 1e-7)
    check = compare_results(COMMITTED, rerun)
    assert not check.exact and check.identical == 9 and check.close == 10
    assert 0 < check.max_abs_difference < 1e-9


def test_a_changed_number_is_neither_and_is_listed():
    rerun = copy.deepcopy(COMMITTED)
    rerun["arms"]["reference"]["rude_rate"]["estimate"] = 0.1328125
    check = compare_results(COMMITTED, rerun)
    assert check.identical == check.close == 9
    assert abs(check.max_abs_difference - 0.0078125) < 1e-12
    assert check.largest_differences == ("arms/reference/rude_rate/estimate: 0.125 -> 0.1328125",)


def test_leaves_on_one_side_only_are_named():
    rerun = copy.deepcopy(COMMITTED)
    del rerun["selection"]["rule"]
    rerun["arms"]["base"] = {"rude_rate": {"estimate": 0.027}}
    check = compare_results(COMMITTED, rerun)
    assert check.only_committed == ("selection/rule",)
    assert check.only_rerun == ("arms/base/rude_rate/estimate",)
    assert not check.exact


def test_the_command_writes_the_check_and_fails_on_a_difference(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(COMMITTED))
    b.write_text(json.dumps(COMMITTED))
    assert main(str(a), str(b), str(tmp_path / "check.json")) == 0
    record = json.loads((tmp_path / "check.json").read_text())
    assert record["check"]["exact"] is True and record["committed"]["command"] == "python -m minidpo run"
    assert record["checked_on"]["python"] and "cpu" in record["checked_on"]
    changed = copy.deepcopy(COMMITTED)
    changed["selection"]["selected_beta"] = 0.5
    b.write_text(json.dumps(changed))
    assert main(str(a), str(b), str(tmp_path / "check.json")) == 1
    assert json.loads((tmp_path / "check.json").read_text())["check"]["largest_differences"] == [
        "selection/selected_beta: 0.1 -> 0.5"]


def test_verdicts_are_counted_apart_and_a_changed_one_is_named():
    committed = {**COMMITTED, "primary": [{"holm": "lower", "comparison": {"verdict": "lower"}},
                                          {"holm": "no clear difference", "comparison": {"verdict": "higher"}}]}
    rerun = copy.deepcopy(committed)
    rerun["primary"][1]["holm"] = "higher"
    check = compare_results(committed, rerun)
    assert (check.verdicts_compared, check.verdicts_same) == (4, 3)
    assert check.verdicts_changed == ("primary/1/holm: 'no clear difference' -> 'higher'",)
    assert compare_results(committed, committed).verdicts_changed == ()


def test_the_suite_runs_on_avx2_kernels_on_x86():
    """tests/golden/ pins the smoke runs' numbers as AVX2 kernels compute them (conftest.py). Mutation caught: the
    pin dropped or set after torch was imported (AVX-512 machines then fail the golden tests by rounding)."""
    import platform

    import torch

    if platform.machine().lower() not in ("x86_64", "amd64") or os.environ.get("ATEN_CPU_CAPABILITY") == "default":
        pytest.skip("not an x86-64 run on the pinned kernels")
    assert torch.backends.cpu.get_cpu_capability() == "AVX2"

"""The experiments' one stage cache (`Run.stage`), its compute rule, the one results serialiser, and the command
line's `--set` (`settings.apply_overrides`).

| test | mutation it catches |
| --- | --- |
| test_stage_computes_once_per_key | a stage recomputed though cached (time counted twice); a changed plan served a stale result |
| test_stage_resumes_an_interrupted_computation_of_the_same_key | a crash's partial work thrown away, or another key's partial work resumed |
| test_an_output_saved_but_never_recorded_is_replaced | a crash between save and record breaking the stage for ever |
| test_compute_s_is_the_sum_of_stage_times | a second timing formula; a cached read counted as compute; another plan's leftovers counted |
| test_to_json_serialises_typed_results | a comparison saved without its verdict; tuples/paths/tensors left unserialisable |
| test_set_overrides_the_plan_and_names_bad_fields | an unknown or mistyped field accepted silently; a config's own check bypassed |
| test_set_reaches_only_the_plans_a_command_runs | a setting applied to a plan the command never runs, or to a field the runs overwrite |
| test_cli_set_reaches_the_plan | `--set` parsed but not applied |
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from minidpo.experiments.profiles import get_profile
from minidpo.experiments.settings import apply_overrides, override_profile
from minidpo.experiments.runs import Run, to_json
from minidpo.stats import Comparison, Interval


def test_stage_computes_once_per_key(tmp_path):
    run, calls = Run(tmp_path), []

    def compute(value):
        def f():
            calls.append(value)
            return {"value": value}
        return f

    assert run.stage("s", compute(1), {"lr": 1}) == {"value": 1}
    assert run.stage("s", compute(2), {"lr": 1}) == {"value": 1}  # cached: same key
    assert calls == [1]
    assert run.stage("s", compute(3), {"lr": 2}) == {"value": 3}  # another key: recomputed, not served stale
    assert run.stage("s", compute(4), {"lr": 2}) == {"value": 3} and calls == [1, 3]
    assert json.loads((tmp_path / "s" / "key.json").read_text()) == {"lr": 2}


def test_stage_resumes_an_interrupted_computation_of_the_same_key(tmp_path):
    run = Run(tmp_path)

    def crash():
        (run.folder("s") / "checkpoint.pt").write_text("half done")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run.stage("s", crash, {"k": 1})
    seen = []
    run.stage("s", lambda: seen.append((run.folder("s") / "checkpoint.pt").exists()) or 1, {"k": 1})
    assert seen == [True]  # the same key finds its checkpoint
    assert not (run.folder("s") / "checkpoint.pt").exists()  # and it is cleaned up once the stage is saved
    def fail():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run.stage("t", fail, {"k": 1})
    (run.folder("t") / "checkpoint.pt").write_text("another configuration's")
    run.stage("t", lambda: seen.append((run.folder("t") / "checkpoint.pt").exists()) or 1, {"k": 2})
    assert seen == [True, False]  # another key never resumes it


def test_an_output_saved_but_never_recorded_is_replaced(tmp_path):
    """A crash between a codec's save and the stage's record leaves an output no stage.json vouches for: the rerun
    must recompute and save over it (a directory rename onto it would fail for ever)."""
    from minidpo.experiments.runs import Codec

    def save(folder, value):
        tmp = folder / "model.tmp"
        tmp.mkdir()
        (tmp / "v.txt").write_text(str(value))
        tmp.replace(folder / "model")

    codec = Codec("dir", save, lambda folder: int((folder / "model" / "v.txt").read_text()))
    run = Run(tmp_path)
    (tmp_path / "s" / "model").mkdir(parents=True)
    (tmp_path / "s" / "model" / "v.txt").write_text("1")
    (tmp_path / "s" / "key.json").write_text(json.dumps({"k": 1}))  # same key, no stage.json: the crash
    assert run.stage("s", lambda: 2, {"k": 1}, codec) == 2 and Run(tmp_path).stage("s", lambda: 3, {"k": 1}, codec) == 2


def test_compute_s_is_the_sum_of_stage_times(tmp_path):
    run = Run(tmp_path)
    run.stage("a", lambda: time.sleep(0.2) or 1)
    run.stage("b/c", lambda: time.sleep(0.1) or 2)
    first = run.compute_s()
    assert 0.3 <= first < 1.0 and set(run.timing()) == {"a", "b/c"}
    assert run.compute_s(["a"]) == pytest.approx(run.timing()["a"]["seconds"])
    run.stage("a", lambda: time.sleep(1) or 1)  # read back: not compute
    assert run.compute_s() == first
    Run(tmp_path).stage("old", lambda: 3)  # a stage of another plan, left in the folder
    assert Run(tmp_path).compute_s() == 0 and "old" not in run.timing()  # counted only by an invocation that uses it


@dataclass(frozen=True)
class _Point:
    name: str
    where: Path
    values: tuple


def test_to_json_serialises_typed_results(tmp_path):
    c = Comparison("m", "a", "b", Interval(0.1, 0.05, 0.2, "paired bootstrap over prompts", 10))
    out = to_json({"c": c, "p": _Point("x", Path("rel/file"), (1, 2)), "t": torch.tensor([1.5])})
    assert out["c"]["verdict"] == "higher" and out["c"]["interval"]["n"] == 10
    assert out["p"] == {"name": "x", "where": "rel/file", "values": [1, 2]} and out["t"] == [1.5]
    json.dumps(out)


def test_set_overrides_the_plan_and_names_bad_fields():
    plan = get_profile("cpu").instruction
    new = apply_overrides(plan, ["dpo.learning_rate=1e-6", "betas=0.2, 0.5", "reference.warmup_steps=2", "n_test=50"])
    assert (new.dpo.learning_rate, new.betas, new.reference.warmup_steps, new.n_test) == (1e-6, (0.2, 0.5), 2, 50)
    assert plan.dpo.learning_rate != 1e-6  # the profile's plan is untouched
    for bad, message in [("dpo.learnin_rate=1", "DPOConfig has no field 'learnin_rate'"),
                         ("dpo.learning_rate=-1", "learning_rate must be a finite number > 0"),
                         ("betas=a", "cannot read 'a' as float"), ("n_test=1.5", "cannot read '1.5' as int"),
                         ("dpo.beta=0.2", "set betas"), ("dpo=1", "a group of settings"),
                         ("dpo.loss_type=ipo", "each arm sets its loss"), ("reference.seed=3", "the profile's seed"),
                         ("samples_per_prompt=1", "the A/A control"), ("checkpoints=1, 0.5", "increasing"),
                         ("dpo.output_dir=x", "its own stage folder"),
                         ("learning_rate", "expected field=value")]:
        with pytest.raises(ValueError, match=message):
            apply_overrides(plan, [bad])


def test_set_reaches_only_the_plans_a_command_runs():
    profile = get_profile("smoke")
    assert override_profile(profile, "instruction", ["sentence_encoder=my/encoder"]).instruction.sentence_encoder == \
        "my/encoder"  # an optional text field
    fam = override_profile(profile, "family", ["frontier.dpo.learning_rate=0.3", "seeds=0,1,2"])
    assert fam.frontier.dpo.learning_rate == 0.3 and fam.family.seeds == (0, 1, 2)
    var = override_profile(profile, "sentiment", ["dpo.learning_rate=0.2"])  # `variants` runs the sentiment base
    assert var.sentiment.dpo.learning_rate == 0.2
    for plan, bad, message in [("instruction", "frontier.n_test=5", "runs the instruction plan, not the frontier"),
                               ("frontier", "dpo.num_epochs=2", "set dpo_checkpoints"),
                               ("instruction", "dpo.num_epochs=2", "set checkpoints"),
                               ("family", "frontier.dpo.num_epochs=2", "set dpo_checkpoints"),
                               ("family", "instruction.betas=0.1", "runs the family plan, not the instruction"),
                               ("frontier", "ppo.max_new_tokens=9", "max_new_tokens"),
                               ("family", "arms=x", "cannot be set from the command line")]:
        with pytest.raises(ValueError, match=message):
            override_profile(profile, plan, [bad])


def test_cli_set_reaches_the_plan(monkeypatch):
    from minidpo.experiments import cli

    seen = {}

    def fake_run(profile, **kw):
        seen["plan"] = profile.instruction
        raise SystemExit(0)

    monkeypatch.setattr("minidpo.experiments.instruction_results.run_instruction", fake_run)
    with pytest.raises(SystemExit):
        cli.main(["run", "--profile", "smoke", "--set", "dpo.learning_rate=0.5", "--set", "betas=0.3"])
    assert seen["plan"].dpo.learning_rate == 0.5 and seen["plan"].betas == (0.3,)
    with pytest.raises(SystemExit):  # argparse's error, with the message naming the field
        cli.main(["run", "--profile", "smoke", "--set", "dpo.nope=1"])

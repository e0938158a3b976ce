"""The sentiment task (review prefixes, VADER reward) and the frontier experiment end to end on the smoke profile."""

import json
import math
from dataclasses import replace

import pytest
from golden_numbers import compare
import torch

from minidpo.data import PreferenceDataError
from minidpo.experiments.frontier_plots import frontier_points
from minidpo.experiments.frontier_run import run_frontier
from minidpo.experiments.measure import MemoryMonitor, rss_bytes
from minidpo.experiments.profiles import get_profile
from minidpo.experiments.sentiment import join, load_review_prompts, parse_snippets, split_prefix, vader_reward


def test_parse_snippets_names_the_bad_line_and_field():
    assert parse_snippets("1\t2.5\tA ''great'' film\r\n\n2\t-1\tDull.") == ['A "great" film', "Dull."]
    with pytest.raises(PreferenceDataError, match=r"line 2: expected 3 tab-separated fields"):
        parse_snippets("1\t2.5\tok\n2\tbroken")
    with pytest.raises(PreferenceDataError, match=r"line 1, field 'rating': not a number"):
        parse_snippets("1\tgood\ttext")
    with pytest.raises(PreferenceDataError, match=r"line 1, field 'text': empty"):
        parse_snippets("1\t0.5\t  ")


def test_split_prefix_continues_the_text_verbatim():
    prompt, rest = split_prefix("an utterly charming little film", 2)
    assert (prompt, rest) == ("an utterly", " charming little film")
    assert prompt + rest == "an utterly charming little film"


def test_review_prompts_are_prefixes_of_real_reviews():
    ds = load_review_prompts(seed=0, max_texts=200)
    assert len(ds) == 200 and len(set(ds["record_id"])) == 200
    words = [len(p.split(" ")) for p in ds["prompt"]]
    assert min(words) >= 2 and max(words) <= 8 and len(set(words)) > 3  # prefix lengths vary, as in the paper
    for p, c in zip(ds["prompt"], ds["continuation"]):
        assert c.startswith(" ") and len((p + c).split(" ")) >= 10
    assert load_review_prompts(seed=0, max_texts=200)["prompt"] == ds["prompt"]  # same seed, same prompts
    assert load_review_prompts(seed=1, max_texts=200)["prompt"] != ds["prompt"]


def test_vader_reward_orders_sentiment():
    reward = vader_reward()
    r = reward([join("The film was", "wonderful, moving and beautifully acted."), join("The film was", "on Tuesday."),
                join("The film was", "a dull, awful mess.")])
    assert r[0] > 0.5 and r[1] == 0 and r[2] < -0.5


def test_memory_monitor_sees_an_allocation():
    with MemoryMonitor(interval=0.005) as mem:
        x = torch.ones(64 * 2**20)  # 256 MiB, touched
        x += 1
        inside = rss_bytes()
        del x
    assert mem.seconds > 0
    if inside is not None:  # Linux: the peak is at least what the process held inside the block
        assert mem.peak_gib * 2**30 >= inside and mem.rise_gib >= 0


def test_frontier_smoke_run(tmp_path):
    """Every stage of notebook 08 on the smoke profile: every seed and checkpoint of every curve scored on the test
    prompts, the reward model and PPO's learning rate chosen on validation, the matched-KL verdicts, budgets and
    files; then a rerun reads the caches."""
    profile = get_profile("smoke")
    results = run_frontier(profile, run_dir=tmp_path / "run", results_dir=tmp_path / "results", figures_dir=tmp_path / "figures",
                           show_progress=False)
    assert not compare(results, "frontier_smoke"), compare(results, "frontier_smoke")[:20]
    plan = profile.frontier
    from minidpo.experiments.frontier import prepare_task

    task = prepare_task(profile, tmp_path / "run", show_progress=False)
    task_prompts = {k: set(v["prompt"]) for k, v in task.splits.items()}
    assert not task_prompts["pairs_val"] & task_prompts["test"]
    assert set(results["curves"]) == {"DPO", "PPO", "PPO-GT"}
    knobs = {"DPO": plan.dpo_betas, "PPO": plan.kl_coefs, "PPO-GT": plan.kl_coefs}
    for method, curves in results["curves"].items():
        assert [c[c["knob"]] for c in curves] == sorted(knobs[method])
        budgets = plan.dpo_checkpoints if method == "DPO" else plan.ppo_checkpoints
        for curve in curves:
            seeds = plan.seeds if method == "DPO" else plan.rl_seeds
            assert curve["seeds"] == list(seeds) and [p["budget"] for p in curve["points"]] == list(budgets)
            for p in curve["points"]:
                assert p["n"] == plan.n_test and math.isfinite(p["kl"]) and -1 <= p["reward"] <= 1
                assert p["reward_ci"][0] <= p["reward"] <= p["reward_ci"][1]
                assert p["reward"] == pytest.approx(sum(p["seed_rewards"]) / len(seeds), abs=1e-6)  # seeds' mean
                if method != "DPO":  # the reward model read on PPO's own samples
                    assert p["rm_pairs_vs_sft"] == 0 or 0 <= p["rm_accuracy_vs_sft"] <= 1
    ref = results["reference_points"]
    assert ref["SFT"]["kl"] == pytest.approx(0.0, abs=1e-5)  # the SFT model against itself
    assert [p["best_of"] for p in ref["Best-of-N"]] == list(plan.best_of)
    assert len(results["runs"]) == len(plan.seeds) * len(plan.dpo_betas) + len(plan.rl_seeds) * 2 * len(plan.kl_coefs)
    for run in results["runs"]:
        if run["method"] != "DPO":
            assert len(run["history"]) == plan.ppo_checkpoints[-1]
            assert all(run["history"][0][k] is not None for k in ("policy/approxkl_avg", "val/ratio_max",
                                                                  "policy/entropy_avg", "learning_rate"))
    # choices made on validation, with their rules stored
    pilot, rm = results["ppo_pilot"], results["reward_model"]
    assert pilot["split"] == "validation" and pilot["learning_rate"] in plan.ppo_pilot_lrs and pilot["rule"]
    assert [r["learning_rate"] for r in pilot["runs"]] == list(plan.ppo_pilot_lrs)
    assert rm["learning_rate"] in plan.reward_model_lrs and rm["epochs"] in plan.reward_model_epochs and rm["rule"]
    assert len(rm["candidates"]) == len(plan.reward_model_lrs) and rm["calibration"]["scale"] > 0
    assert rm["validation_accuracy_ci"][0] <= rm["validation_accuracy"] <= rm["validation_accuracy_ci"][1]
    assert results["ppo_stability"]["runs"] and results["analysis_plan"]["decision"]
    for name, verdict in results["matched_kl"].items():
        assert verdict["verdict"] in ("DPO higher", "DPO lower", "mixed", "no clear difference", "no overlap",
                                      "inconclusive")
        for r in verdict["readings"]:
            i = r["comparison"]["interval"]
            assert i["estimate"] == pytest.approx(r["dpo_reward"] - r["other_reward"], abs=1e-9)
    assert {b["method"] for b in results["budgets"]} == {"DPO", "Preferred-FT", "PPO", "PPO-GT", "Best-of-N"}
    assert results["pairs"]["train"]["pairs"] + results["pairs"]["train"]["ties_dropped"] == plan.n_pairs_train
    assert results["compute_s"] > 0 and results["peak_rss_gib"] > 0
    saved = json.loads((tmp_path / "results" / "frontier_smoke.json").read_text())
    assert saved["curves"] == json.loads(json.dumps(results["curves"]))
    for path in results["figures"].values():
        assert (tmp_path / "figures").joinpath(path.split("/")[-1]).stat().st_size > 10_000
    again = run_frontier(profile, run_dir=tmp_path / "run", results_dir=tmp_path / "results2", figures_dir=tmp_path / "figures2",
                         show_progress=False)
    assert again["curves"] == results["curves"] and again["compute_s"] == results["compute_s"]  # every stage cached


def test_frontier_stages_are_keyed_by_the_plan(tmp_path):
    """A changed plan recomputes the stages it touches and no other: a DPO learning rate leaves SFT cached, an SFT
    learning rate retrains it (mutation caught: a cache keyed by stage name only, or by the whole plan)."""
    from minidpo.experiments.frontier import prepare_task, sft_stage

    profile = get_profile("smoke")
    meta = tmp_path / "sft" / "stage.json"
    sft_stage(prepare_task(profile, tmp_path, show_progress=False))
    first = meta.read_text()
    dpo_changed = replace(profile.frontier, dpo=replace(profile.frontier.dpo, learning_rate=0.5))
    sft_stage(prepare_task(get_profile("smoke", frontier=dpo_changed), tmp_path, show_progress=False))
    assert meta.read_text() == first
    sft_changed = replace(profile.frontier, sft=replace(profile.frontier.sft, learning_rate=0.5))
    sft_stage(prepare_task(get_profile("smoke", frontier=sft_changed), tmp_path, show_progress=False))
    assert meta.read_text() != first and json.loads((tmp_path / "sft" / "key.json").read_text())["task"]["sft"]["learning_rate"] == 0.5


def test_frontier_points_group_and_sort_by_kl():
    runs = [{"method": "DPO", "kl": 2.0, "reward": 0.3, "beta": 0.1}, {"method": "DPO", "kl": 0.5, "reward": 0.1, "beta": 1.0},
            {"method": "PPO", "kl": 1.0, "reward": 0.2, "kl_coef": 0.1}]
    points = frontier_points(runs)
    assert [p["beta"] for p in points["DPO"]] == [1.0, 0.1] and points["PPO"][0]["kl_coef"] == 0.1


def test_snippet_download_is_checked(tmp_path, monkeypatch):
    import minidpo.experiments.sentiment as sentiment

    monkeypatch.delenv("MINIDPO_DATA_DIR", raising=False)
    monkeypatch.setenv("MINIDPO_CACHE", str(tmp_path))
    monkeypatch.setattr(sentiment, "_download_sdist", lambda: b"not the sdist")
    with pytest.raises(ValueError, match="sha256"):
        sentiment.review_snippets_path()
    assert not (tmp_path / "data" / sentiment.SNIPPETS_FILE).exists()  # nothing half-written is left to be trusted

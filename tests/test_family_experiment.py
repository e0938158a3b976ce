"""Notebook 10's experiment end to end on the smoke profile: every arm tuned on validation by the plan's rule, on its
own curve with every seed, read against DPO's curves at matched KL raw and length-adjusted with one Holm family, the
length regression recomputed here, files written, and the stages cached (a rerun recomputes nothing); notebook 09's
`variants` command on the sentiment base."""

import json
import math

import torch
from golden_numbers import compare

from minidpo.experiments.family_run import run_family
from minidpo.experiments.profiles import get_profile
from minidpo.experiments.variants import run_variants


def test_family_smoke_run(tmp_path):
    profile = get_profile("smoke")
    fam = profile.family
    kw = dict(run_dir=tmp_path / "frontier", show_progress=False)
    results = run_family(profile, results_dir=tmp_path / "results", figures_dir=tmp_path / "figures", **kw)
    # every number as the code of issue 29 computed it (tests/golden_numbers.py)
    assert not compare(results, "family_smoke"), compare(results, "family_smoke")[:20]
    ranked = results["rankings"]["train"]["rankings"] > 0  # a random tiny model can tie on every prompt
    expected = [a.method for a in fam.arms if ranked or a.loss_type not in ("plackett_luce", "best_worst")]
    assert list(results["arms"]) == expected
    assert results["analysis_plan"]["decision"].startswith("one Holm family")  # the plan travels with the results
    for arm in fam.arms:
        if arm.method not in results["arms"]:
            continue
        a = results["arms"][arm.method]
        curve = results["curves"][arm.method]
        assert len(curve) == 1 and curve[0]["seeds"] == list(fam.seeds)
        assert [p["budget"] for p in curve[0]["points"]] == list(fam.checkpoints)
        for p in curve[0]["points"]:
            assert math.isfinite(p["kl"]) and p["reward_ci"][0] <= p["reward"] <= p["reward_ci"][1]
        if arm.grid is None:
            assert a["grid"] is None and a["value"] is None
        else:  # the rule recomputed: the highest validation reward - kl_coef x KL, read on the validation prompts
            g = a["grid"]
            assert g["parameter"] == arm.grid[0] and g["values"] == list(arm.grid[1])
            assert g["split"] == "validation" and g["n_prompts"] == profile.frontier.n_pairs_val  # not the test prompts
            assert g["reward"] == ("length-adjusted" if arm.length_adjusted_primary else "raw")
            objective = [r - fam.selection_kl_coef * k for r, k in zip(g["validation_reward"], g["validation_kl"])]
            assert a["value"] == g["chosen"] == g["values"][objective.index(max(objective))]
        v = a["verdicts"]
        assert v["primary"] == ("length-adjusted" if arm.length_adjusted_primary else "raw")
        for kind in ("raw", "length-adjusted"):
            assert v[kind]["verdict"] in ("DPO higher", "DPO lower", "mixed", "no clear difference", "no overlap",
                                          "inconclusive")
            for r in v[kind]["readings"]:
                i = r["comparison"]["interval"]
                assert i["n"] == results["sft"]["n"] and r["dpo"].startswith("DPO beta=")
                assert r["other"] == f"{arm.method} beta={curve[0]['beta']:g}"
    # the length regression recomputed independently (torch.linalg.lstsq on the cached SFT replies)
    lr = results["length_regression"]
    raw = json.loads((tmp_path / "frontier" / f"length_regression_d{fam.length_draws}" / "value.json").read_text())
    x = torch.tensor(raw["lengths"], dtype=torch.float64).flatten()
    y = torch.tensor(raw["rewards"], dtype=torch.float64).flatten()
    if float(x.std()) > 0:
        design = torch.stack([torch.ones_like(x), x], 1)
        intercept, slope = torch.linalg.lstsq(design, y.unsqueeze(1)).solution.flatten().tolist()
    else:  # every smoke reply ran to max_new_tokens (EOS has p ~ 0.003 per token here): no slope to fit, 0 by
        slope, intercept = 0.0, float(y.mean())  # convention (tests/test_family_verdicts.py plants both cases)
    assert abs(slope - lr["slope"]["estimate"]) < 1e-9 and abs(intercept - lr["intercept"]) < 1e-9
    assert lr["slope"]["low"] <= lr["slope"]["estimate"] <= lr["slope"]["high"] and lr["slope"]["n"] == profile.frontier.n_pairs_val
    assert lr["n_replies"] == fam.length_draws * profile.frontier.n_pairs_val
    # an adjusted point is its reward minus slope x (its length - the SFT model's)
    for curves in results["curves"].values():
        for p in curves[0]["points"]:
            assert abs(p["length_adjusted_reward"]
                       - (p["reward"] - lr["slope"]["estimate"] * (p["reply_tokens"] - results["sft"]["reply_tokens"]))) < 1e-12
    saved = json.loads((tmp_path / "results" / "family_smoke.json").read_text())
    assert saved["arms"] == json.loads(json.dumps(results["arms"]))
    assert all((tmp_path / "figures" / f"10_family_{k}_smoke.png").stat().st_size > 10_000
               for k in ("curves", "curves_length_adjusted"))
    stages = {p: p.read_text() for p in (tmp_path / "frontier").rglob("stage.json")}
    again = run_family(profile, results_dir=tmp_path / "results2", figures_dir=tmp_path / "figures2", **kw)
    assert again["curves"] == results["curves"] and again["arms"] == results["arms"]
    # every run came from its cache: no stage was computed again (each records its own time when it computes)
    assert {p: p.read_text() for p in (tmp_path / "frontier").rglob("stage.json")} == stages


def test_variants_smoke_run(tmp_path):
    profile = get_profile("smoke")
    results = run_variants(profile, run_dir=tmp_path / "sentiment", results_dir=tmp_path / "results",
                           figures_dir=tmp_path / "figures", show_progress=False)
    plan = profile.sentiment
    assert [r["beta"] for r in results["dpo"]] == list(plan.dpo_betas)
    assert [r["method"] for r in results["variant_runs"]] == [v.method for v in plan.variants]
    assert [[p["epochs"] for p in r["points"]] for r in results["long_runs"]] == [list(plan.long_epochs)] * len(plan.long_runs)
    for run, fall in zip(results["long_runs"], results["long_run_falls"]):
        # "did it fall": the last checkpoint minus every earlier one (none picked by its reward), paired over prompts
        last = run["points"][-1]
        assert len(fall["comparisons"]) == len(run["points"]) - 1
        for c, p in zip(fall["comparisons"], run["points"][:-1]):
            assert abs(c["interval"]["estimate"] - (last["reward"] - p["reward"])) < 1e-6
        assert fall["verdict"] in ("lower", "higher", "no clear difference", "mixed")
    assert results["compute_s"] > 0 and all("history" in r for r in results["dpo"] + results["variant_runs"])
    assert all((tmp_path / "figures" / f"09_{k}_smoke.png").stat().st_size > 10_000
               for k in ("variants_frontier", "over_optimisation"))

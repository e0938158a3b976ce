"""The command line of the experiments: `python -m minidpo run|frontier|family|figures|report [--profile smoke|cpu|gpu]`."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m minidpo", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="notebooks 04-07: reference, Preferred-FT and DPO at a beta grid on the instruction pairs, "
                                     "measured by a validated preference judge and guard metrics")
    run.add_argument("--profile", default=None, help="smoke, cpu or gpu (default: $MINIDPO_PROFILE, else cpu)")
    run.add_argument("--seed", type=int, default=None, help="override the profile's seed (data split, training, sampling)")
    run.add_argument("--run-dir", default=None, help="checkpoints and caches (default runs/<profile>; smoke: runs/smoke-<config hash>)")
    run.add_argument("--results-dir", default=None, help="default results/ (runs/smoke/results for smoke)")
    run.add_argument("--figures-dir", default=None, help="default figures/ (runs/smoke/figures for smoke)")
    fr = sub.add_parser("frontier", help="notebook 08: DPO vs PPO and PPO-GT (seeds, matched KL), best-of-N, preferred-FT on controlled sentiment")
    fr.add_argument("--profile", default=None, help="smoke, cpu or gpu (default: $MINIDPO_PROFILE, else cpu)")
    fr.add_argument("--run-dir", default=None, help="default runs/<profile>/frontier")
    fr.add_argument("--results-dir", default=None, help="default results/ (runs/smoke/results for smoke)")
    fr.add_argument("--figures-dir", default=None, help="default figures/ (runs/smoke/figures for smoke)")
    fam = sub.add_parser("family", help="notebook 10: DPO's family (offline, online, Plackett-Luce) on the sentiment frontier and the "
                                        "instruction pairs")
    fam.add_argument("--profile", default=None, help="smoke, cpu or gpu (default: $MINIDPO_PROFILE, else cpu)")
    fam.add_argument("--results-dir", default=None, help="default results/ (runs/smoke/results for smoke)")
    fam.add_argument("--figures-dir", default=None, help="default figures/ (runs/smoke/figures for smoke)")
    figs = sub.add_parser("figures", help="redraw the figures from results/instruction_<profile>.json")
    figs.add_argument("--profile", default=None)
    figs.add_argument("--results-dir", default="results")
    figs.add_argument("--figures-dir", default="figures")
    rep = sub.add_parser("report", help="report/generated/*.tex from results/*.json (and the PDF with --pdf)")
    rep.add_argument("--pdf", action="store_true", help="also build report/minidpo.pdf with latexmk and check the log")
    rep.add_argument("--profile", default="cpu", help="whose results the tables show (default cpu)")
    args = parser.parse_args(argv)

    if args.command == "report":
        from .report import main as report_main

        return report_main(pdf=args.pdf, profile=args.profile)

    if args.command == "figures":
        from .instruction_plots import instruction_figures
        from .profiles import get_profile

        name = get_profile(args.profile).name
        results = json.loads((Path(args.results_dir) / f"instruction_{name}.json").read_text())
        for path in instruction_figures(results, args.figures_dir).values():
            print(path)
        return 0

    if args.command == "family":
        from .family import run_family
        from .profiles import get_profile

        profile = get_profile(args.profile)
        scratch = f"runs/{profile.name}" if profile.name == "smoke" else "."
        results = run_family(profile, results_dir=args.results_dir or os.path.join(scratch, "results"),
                             figures_dir=args.figures_dir or os.path.join(scratch, "figures"))
        summary = {p["method"] + (f" beta={p['beta']:g}" if p.get("beta") is not None else ""):
                   f"KL {p['kl']:.2f} reward {p['reward']:.3f} [{p['reward_ci'][0]:.3f}, {p['reward_ci'][1]:.3f}]"
                   for p in results["sentiment"]["points"]}
        rows = {m: f"{r['judge_vs_reference']['rate']:.3f} [{r['judge_vs_reference']['ci_low']:.3f}, {r['judge_vs_reference']['ci_high']:.3f}]"
                for m, r in results["instruction"]["rows"].items() if m != "reference"}
        print(json.dumps({"profile": profile.name, "sentiment": summary, "instruction judge win rate vs reference": rows,
                          "compute_s": round(results["compute_s"], 1)}, indent=1))
        return 0

    if args.command == "frontier":
        from .frontier_run import run_frontier
        from .profiles import get_profile

        profile = get_profile(args.profile)
        scratch = f"runs/{profile.name}" if profile.name == "smoke" else "."
        results = run_frontier(profile, run_dir=args.run_dir, results_dir=args.results_dir or os.path.join(scratch, "results"),
                               figures_dir=args.figures_dir or os.path.join(scratch, "figures"))
        summary = {method: [f"KL {p['kl']:.2f} reward {p['reward']:.3f}" for p in points] for method, points in results["frontier"].items()}
        print(json.dumps({"profile": profile.name, "frontier": summary, "verdicts": {k: v["verdict"] for k, v in results["matched_kl"].items()},
                          "compute_s": round(results["compute_s"], 1), "this_invocation_s": round(results["wall_s_this_invocation"], 1)}, indent=1))
        return 0

    from .instruction_eval import run_instruction
    from .profiles import get_profile

    profile = get_profile(args.profile) if args.seed is None else get_profile(args.profile, seed=args.seed)
    # smoke runs must not overwrite the committed results and figures of a real run
    scratch = f"runs/{profile.name}" if profile.name == "smoke" else "."
    results = run_instruction(profile, run_dir=args.run_dir, results_dir=args.results_dir or os.path.join(scratch, "results"),
                              figures_dir=args.figures_dir or os.path.join(scratch, "figures"))
    fmt = lambda v: f"{v['rate']:.3f} [{v['ci_low']:.3f}, {v['ci_high']:.3f}]"  # noqa: E731
    rows = results["results"]
    summary = {
        "profile": results["profile"],
        "judge_test_pair_accuracy": fmt(results["instruments"]["preference_judge"]["test_pair_accuracy"]),
        "judge_win_rate_vs_reference": {a: fmt(rows[a]["judge_vs_reference"]) for a in results["arms"] if a != "reference"},
        "kl_to_reference": {a: round(rows[a]["kl"]["kl"], 2) for a in results["arms"]},
        "selected_beta (validation)": results["selected_beta"]["beta"],
        "compute_s (all stages, whichever invocation ran them)": round(results["compute_s"], 1),
        "this_invocation_s": round(results["total_s_this_invocation"], 1),
        "peak_rss_gib": round(results["peak_rss_gib"], 2),
    }
    print(json.dumps(summary, indent=1))
    return 0


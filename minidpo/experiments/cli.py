"""The command line of the experiments:
`python -m minidpo run|frontier|family|variants|figures|report [--profile smoke|cpu|gpu]`, and
`python -m minidpo reproduce COMMITTED RERUN [--out FILE]`.

Any knob of a plan is settable: `python -m minidpo run --set dpo.learning_rate=1e-6 --set betas=0.1,0.5` (fields of
the command's plan, `profiles.InstructionPlan`, `FrontierPlan` or `FamilyPlan`; `family` also takes
`frontier.<field>`, `variants` the sentiment base's `FrontierPlan`). The plan actually used is stored in the results
file."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m minidpo", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="notebooks 04-07: reference, Preferred-FT and DPO at a beta grid on the "
                                     "instruction pairs, measured by a validated preference judge and guard metrics")
    run.add_argument("--profile", default=None, help="smoke, cpu or gpu (default: $MINIDPO_PROFILE, else cpu)")
    run.add_argument("--seed", type=int, default=None,
                     help="override the profile's seed (data split, training, sampling)")
    run.add_argument("--run-dir", default=None, help="the stages' folder (default runs/<profile>/instruction)")
    run.add_argument("--results-dir", default=None, help="default results/ (runs/smoke/results for smoke)")
    run.add_argument("--figures-dir", default=None, help="default figures/ (runs/smoke/figures for smoke)")
    fr = sub.add_parser("frontier", help="notebook 08: DPO vs PPO and PPO-GT (seeds, matched KL), best-of-N, "
                                         "preferred-FT on controlled sentiment")
    fr.add_argument("--profile", default=None, help="smoke, cpu or gpu (default: $MINIDPO_PROFILE, else cpu)")
    fr.add_argument("--run-dir", default=None, help="default runs/<profile>/frontier")
    fr.add_argument("--results-dir", default=None, help="default results/ (runs/smoke/results for smoke)")
    fr.add_argument("--figures-dir", default=None, help="default figures/ (runs/smoke/figures for smoke)")
    fam = sub.add_parser("family", help="notebook 10: DPO's family (offline, online, Plackett-Luce), each arm on its "
                                        "own curve against DPO's at matched KL, on the frontier's task")
    fam.add_argument("--profile", default=None, help="smoke, cpu or gpu (default: $MINIDPO_PROFILE, else cpu)")
    fam.add_argument("--results-dir", default=None, help="default results/ (runs/smoke/results for smoke)")
    fam.add_argument("--figures-dir", default=None, help="default figures/ (runs/smoke/figures for smoke)")
    var = sub.add_parser("variants", help="notebook 09: cDPO, IPO, hinge and the long runs on the sentiment base")
    var.add_argument("--profile", default=None, help="smoke, cpu or gpu (default: $MINIDPO_PROFILE, else cpu)")
    var.add_argument("--results-dir", default=None, help="default results/ (runs/smoke/results for smoke)")
    var.add_argument("--figures-dir", default=None, help="default figures/ (runs/smoke/figures for smoke)")
    figs = sub.add_parser("figures", help="redraw the figures from results/instruction_<profile>.json")
    figs.add_argument("--profile", default=None)
    figs.add_argument("--results-dir", default="results")
    figs.add_argument("--figures-dir", default="figures")
    rep = sub.add_parser("report", help="report/generated/*.tex from results/*.json (and the PDF with --pdf)")
    rep.add_argument("--pdf", action="store_true", help="also build report/minidpo.pdf with latexmk and check the log")
    rep.add_argument("--profile", default="cpu", help="whose results the tables show (default cpu)")
    rpr = sub.add_parser("reproduce", help="compare a rerun's results file with the committed one, leaf by leaf")
    rpr.add_argument("committed", help="the committed results file, e.g. results/instruction_cpu.json")
    rpr.add_argument("rerun", help="the rerun's results file")
    rpr.add_argument("--out", default=None, help="write the check here, e.g. results/reproduction_cpu.json")
    for command in (run, fr, fam, var):
        command.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                             help="set a field of the plan, e.g. dpo.learning_rate=1e-6 or betas=0.1,0.5 (repeatable)")
    args = parser.parse_args(argv)
    if args.command in ("run", "frontier", "family", "variants"):
        from .profiles import get_profile
        from .settings import override_profile

        try:
            profile = (get_profile(args.profile) if getattr(args, "seed", None) is None
                       else get_profile(args.profile, seed=args.seed))
            plan = {"run": "instruction", "variants": "sentiment"}.get(args.command, args.command)
            profile = override_profile(profile, plan, args.set)
        except ValueError as e:
            parser.error(str(e))
        # smoke runs must not overwrite the committed results and figures of a real run
        scratch = f"runs/{profile.name}" if profile.name == "smoke" else "."
        results_dir = args.results_dir or os.path.join(scratch, "results")
        figures_dir = args.figures_dir or os.path.join(scratch, "figures")

    if args.command == "reproduce":
        from .reproduce import main as reproduce_main

        return reproduce_main(args.committed, args.rerun, args.out)

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
        from .family_run import run_family

        results = run_family(profile, results_dir=results_dir, figures_dir=figures_dir)
        kinds = ("raw", "length-adjusted")
        summary = {method: {"value": a["value"], **{kind: a["verdicts"][kind]["verdict"] for kind in kinds},
                            "primary": a["verdicts"]["primary"]} for method, a in results["arms"].items()}
        print(json.dumps({"profile": profile.name, "arms vs DPO at matched KL": summary,
                          "compute_s": round(results["compute_s"], 1),
                          "this_invocation_s": round(results["wall_s_this_invocation"], 1)}, indent=1))
        return 0

    if args.command == "variants":
        from .variants import run_variants

        results = run_variants(profile, results_dir=results_dir, figures_dir=figures_dir)
        print(json.dumps({"profile": profile.name, "compute_s": round(results["compute_s"], 1),
                          "points": {f"{r['method']} beta={r['beta']:g}": f"KL {r['kl']:.2f} reward {r['reward']:.3f}"
                                     for r in [*results["dpo"], *results["variant_runs"]]}}, indent=1))
        return 0

    if args.command == "frontier":
        from .frontier_run import run_frontier

        results = run_frontier(profile, run_dir=args.run_dir, results_dir=results_dir, figures_dir=figures_dir)
        summary = {_curve: [f"KL {p['kl']:.2f} reward {p['reward']:.3f}" for p in curve["points"]]
                   for curves in results["curves"].values() for curve in curves
                   for _curve in [f"{curve['method']} {curve['knob']}={curve[curve['knob']]:g}"]}
        print(json.dumps({"profile": profile.name, "curves": summary,
                          "ppo_learning_rate": results["ppo_pilot"]["learning_rate"],
                          "ppo_stable": results["ppo_stability"]["all_stable"],
                          "verdicts": {k: v["verdict"] for k, v in results["matched_kl"].items()},
                          "compute_s": round(results["compute_s"], 1),
                          "this_invocation_s": round(results["wall_s_this_invocation"], 1)}, indent=1))
        return 0

    from . import instruction_results

    results = instruction_results.run_instruction(profile, run_dir=args.run_dir, results_dir=results_dir,
                                                  figures_dir=figures_dir)
    summary = {
        "profile": results["profile"],
        "reference_validation_rude_rate": results["reference"]["validation_rude_rate"],
        "selected": results["selection"]["checkpoints"],
        "test_rates": {a: {k: str(round(v[k]["estimate"], 3)) for k in ("rude_rate", "polite_rate")}
                       for a, v in results["arms"].items()},
        "primary (Holm)": [f"{p['comparison']['metric']}: {p['comparison']['a']} vs {p['comparison']['b']}: "
                           f"{p['holm']}" for p in results["primary"]],
        "compute_s (all stages, whichever invocation ran them)": round(results["compute_s"], 1),
        "this_invocation_s": round(results["wall_s_this_invocation"], 1),
        "peak_rss_gib": round(results["peak_rss_gib"], 2),
    }
    print(json.dumps(summary, indent=1))
    return 0


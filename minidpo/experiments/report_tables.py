"""The report's tables, each generated whole from one results file (`report.TABLES` says which): LaTeX `tabular`s
whose every number is formatted from the results, never typed."""

from __future__ import annotations


def _escape(text: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("$", r"\$"), ("#", r"\#"), ("_", r"\_"),
                 ("{", r"\{"), ("}", r"\}"), ("~", r"\textasciitilde{}"), ("^", r"\textasciicircum{}")):
        text = text.replace(a, b)
    return text


def _num(x: float, fmt: str = "+.3f") -> str:
    s = format(x, fmt)
    return s.replace("-", "$-$").replace("+", "$+$")


def _tabular(columns: str, header: str, rows: list[str]) -> str:
    return "\n".join([f"\\begin{{tabular}}{{{columns}}}", r"\toprule", header + r" \\", r"\midrule", *rows,
                      r"\bottomrule", r"\end{tabular}"]) + "\n"


def _reward_cells(r: dict) -> str:
    """`true reward & [95% CI]` of one scored run."""
    lo, hi = r["reward_ci"]
    return f"{_num(r['reward'])} & [{_num(lo)}, {_num(hi)}]"


def frontier_table(results: dict) -> str:
    """One row per point of the frontier experiment: method, knob, budget (chosen on validation), seeds, true
    reward [95% CI over prompts], the range of the seeds' rewards, and KL +- s.e."""
    rows = []

    def budget(r: dict) -> str:
        return f"{r['budget']:g} " + ("ep." if r["budget_unit"] == "epochs" else "it.")

    kl_coef = "\\beta_{\\mathrm{KL}}"
    points = [("SFT", "--", "--", results["sft"])]
    points += [("DPO", f"$\\beta={r['beta']:g}$", budget(r), r) for r in results["dpo"]]
    points += [("PPO", f"${kl_coef}={r['kl_coef']:g}$", budget(r), r) for r in results["ppo"]]
    points += [("PPO-GT", f"${kl_coef}={r['kl_coef']:g}$", budget(r), r) for r in results["ppo_gt"]]
    pft = results["plan"]["preferred_ft"]
    points += [("Preferred-FT", "--",
                f"{pft['num_epochs']:g} ep." if "num_epochs" in pft else f"{pft['max_steps']} steps",
                results["preferred_ft"])]
    points += [("Best-of-$N$", f"$N={r['best_of']}$", "--", r) for r in results["best_of_n"]["rows"]]
    for method, knob, budget, r in points:
        kl = f"{r['kl']:.2f}" + (f" $\\pm$ {r['kl_se']:.2f}" if r.get("kl_se")
                                 else " (bound)" if method.startswith("Best") else "")
        spread = (f"{_num(min(r['seed_rewards']))} to {_num(max(r['seed_rewards']))}" if r.get("seed_rewards")
                  else "--")
        seeds = len(r.get("seeds", [])) or 1
        rows.append(f"{method} & {knob} & {budget} & {seeds} & {_reward_cells(r)} & {spread} & {kl} \\\\")
    return _tabular("lllcrccr", r"method & knob & budget & seeds & true reward & 95\% CI (prompts) & seeds' range "
                    r"& KL (nats)", rows)


def matched_kl_table(results: dict) -> str:
    """DPO against PPO and PPO-GT: each matched-KL reading (whose line, read where, the KL there, both rewards, DPO
    minus the other with its paired-bootstrap 95% interval, whether it counts) and each dominance test (the KL and
    reward differences of two points), then the verdict."""
    rows = []
    for name, m in results["matched_kl"].items():
        other = _escape(name)
        for r in m["comparisons"]:
            if r["difference"] is None:
                rows.append(f"line at {_escape(r['at'])} & {r['kl']:.2f} & "
                            "\\multicolumn{4}{c}{outside the other line's KL range} \\\\")
                continue
            line = "DPO's" if r["line"] == "DPO" else f"{other}'s"
            could_count = (r["difference"] > 0) == (r["line"] == "DPO")  # a line under-credits its own method
            note = ("no: the line's bias runs this way" if not could_count
                    else f"no: {r['out_of_range']}/{r['n_boot']} out of range" if not r["conclusive"]
                    else f"yes, for {'DPO' if r['evidence'] == 'DPO' else other}" if r["evidence"]
                    else "no: interval includes zero")
            rows.append(f"{line} line at {_escape(r['at'])} & {r['kl']:.2f} & {_num(r['dpo_reward'])} & "
                        f"{_num(r['other_reward'])} & "
                        f"{_num(r['difference'])} [{_num(r['ci_low'])}, {_num(r['ci_high'])}] & {note} \\\\")
        for d in m["dominance"]:
            lo, hi = d["reward_ci"]
            klo, khi = d["kl_ci"]
            who = {"DPO": "yes, for DPO", "other": f"yes, for {other}",
                   None: "no: neither dominates"}[d["dominates"]]
            rows.append(f"DPO {_escape(d['dpo'])} vs {other} {_escape(d['other'])} & "
                        f"{_num(d['kl_difference'], '+.2f')} [{_num(klo, '+.2f')}, {_num(khi, '+.2f')}] & & & "
                        f"{_num(d['reward_difference'])} [{_num(lo)}, {_num(hi)}] & {who} \\\\")
        rows.append(f"\\multicolumn{{6}}{{r}}{{\\emph{{verdict against {other}: {m['verdict']}}}}} \\\\")
    return _tabular("lrrrcl", r"comparison & KL (nats; dominance: DPO $-$ other) & DPO & other "
                    r"& DPO $-$ other [95\% CI] & counts?", rows)


def variants_table(results: dict) -> str:
    """Notebook 09 on the sentiment base (from the family experiment's results): DPO and its variants."""
    base = results["sentiment"]["dpo_variants"]
    rows = []
    for r in [*base["dpo"], *base["variant_runs"]]:
        acc = [h for h in r["history"] if "eval_rewards/accuracies" in h][-1]["eval_rewards/accuracies"]
        method = "DPO (sigmoid)" if r["method"] == "DPO" else _escape(r["method"])
        rows.append(f"{method} & {r['beta']:g} & {_reward_cells(r)} & {r['kl']:.2f} $\\pm$ {r['kl_se']:.2f} & "
                    f"{acc:.2f} \\\\")
    return _tabular("lrrcrr", r"loss & $\beta$ & true reward & 95\% CI & KL (nats) & held-out pair acc.", rows)


def family_sentiment_table(results: dict) -> str:
    """Notebook 10's sentiment frontier: every method's point, its reply length and training time."""
    rows = []
    for p in results["sentiment"]["points"]:
        seconds = f"{p['train']['seconds']:.0f}" if "train" in p else "--"
        beta = f"{p['beta']:g}" if p.get("beta") is not None else "--"
        rows.append(f"{_escape(p['method'])} & {beta} & {_reward_cells(p)} & {p['kl']:.2f} $\\pm$ {p['kl_se']:.2f} & "
                    f"{p['reply_tokens']:.1f} & {seconds} \\\\")
    return _tabular("lrrcrrr", r"method & $\beta$ & true reward & 95\% CI & KL (nats) & tokens & train (s)", rows)


def family_instruction_table(results: dict) -> str:
    """Notebook 10 on the instruction pairs: judge win rate vs the reference (paired), length-controlled rate,
    words, fidelity, KL."""
    rows = []
    for method, r in results["instruction"]["rows"].items():
        if method == "reference":
            continue
        rows.append(f"{_escape(method)} & {r['beta']:g} & {_ci(r['judge_vs_reference'])} & "
                    f"{r['lc_vs_reference']['rate']:.2f} & "
                    f"{r['mean_words']:.1f} & {r['fidelity']['mean']:.2f} & {r['kl']['kl']:.2f} \\\\")
    ref = results["instruction"]["rows"]["reference"]
    rows.append(f"reference & -- & -- & -- & {ref['mean_words']:.1f} & {ref['fidelity']['mean']:.2f} & 0 \\\\")
    return _tabular("lrcrrrr", r"loss & $\beta$ & judge vs reference & length-controlled & words & fidelity "
                    r"& KL (nats)", rows)


def _arm_label(arm: str) -> str:
    names = {"base": "base", "reference": "reference (SFT on output)", "preferred_ft": "Preferred-FT (SFT on chosen)"}
    return names.get(arm, arm.replace("dpo_beta", "DPO $\\beta=") + "$" if arm.startswith("dpo_beta") else arm)


def _ci(v: dict, key: str = "rate", fmt: str = ".2f") -> str:
    return f"{v[key]:{fmt}} [{v['ci_low']:{fmt}}, {v['ci_high']:{fmt}}]"


def instruction_table(results: dict) -> str:
    """One row per arm of the instruction experiment: sampled KL to the reference, the preference judge's win
    rate against the reference (95% CI; range over refits), length-controlled, and against Preferred-FT."""
    rows = []
    for arm in results["arms"]:
        r = results["results"][arm]
        kl = f"{r['kl']['kl']:.2f} $\\pm$ {r['kl']['se']:.2f}"
        if arm == "reference":
            vs_ref = lc = spread = "--"
        else:
            v = r["judge_vs_reference"]
            vs_ref, lc = _ci(v), _ci(r["lc_vs_reference"])
            spread = f"{min(v['refit_rates']):.2f}--{max(v['refit_rates']):.2f}"
        vs_pft = _ci(r["judge_vs_preferred_ft"]) if "judge_vs_preferred_ft" in r else "--"
        rows.append(f"{_arm_label(arm)} & {kl} & {vs_ref} & {spread} & {lc} & {vs_pft} \\\\")
    return _tabular("lrcccc", r"arm & KL (nats) & judge vs reference & refits & length-controlled "
                    r"& judge vs Preferred-FT", rows)


def guard_table(results: dict) -> str:
    """Guard metrics per arm, with the chosen and rejected replies' base rates: rude and polite marker rates,
    words, content fidelity, and the Sentence-BERT similarity win rate (closeness to chosen vs rejected)."""
    base = results["instruments"]["marker_base_rates"]
    rows = [f"chosen replies (data) & {100 * base['rude']['chosen']:.0f}\\% & "
            f"{100 * base['polite']['chosen']:.0f}\\% & -- & -- & -- \\\\",
            f"rejected replies (data) & {100 * base['rude']['rejected']:.0f}\\% & "
            f"{100 * base['polite']['rejected']:.0f}\\% & -- & -- & -- \\\\"]
    for arm in results["arms"]:
        r = results["results"][arm]
        rows.append(f"{_arm_label(arm)} & {100 * r['rude_rate']:.0f}\\% & {100 * r['polite_rate']:.0f}\\% & "
                    f"{r['mean_words']:.1f} & {_ci(r['fidelity'], 'mean')} & {_ci(r['similarity_win_rate'])} \\\\")
    return _tabular("lrrrcc", r"replies & rude & polite & words & fidelity & similarity win rate", rows)


def judge_validation_table(results: dict) -> str:
    """The preference judge's validation: held-out pair accuracy (the positive control), relevance, refits,
    and each probe's rate of preferring the edited answer."""
    v = results["instruments"]["preference_judge"]
    rows = [f"chosen beats rejected (test pairs) & {_ci(v['test_pair_accuracy'])} \\\\"]
    rows += [f"\\quad {h.replace('_', ' ')} half & {a:.2f} \\\\" for h, a in v["test_pair_accuracy_by_half"].items()]
    rows.append(f"\\quad {v['refits']} bootstrap refits & "
                f"{min(v['refit_test_pair_accuracy']):.2f}--{max(v['refit_test_pair_accuracy']):.2f} \\\\")
    rows.append(f"own chosen reply beats another prompt's & {_ci(v['relevance_accuracy'])} \\\\")
    names = {"canned_opener": "canned polite opener added", "rude_prefix": "rude prefix added",
             "rude_suffix": "rude suffix added", "duplicated": "answer written twice",
             "polite_off_topic": "polite reply to another prompt"}
    for key, name in names.items():
        rows.append(f"prefers: {name} & {_ci(v['probes'][key], 'prefers_edit')} \\\\")
    rows.append(f"correlation of reward with length & {v['probes']['reward_length_correlation']:+.2f} \\\\")
    return _tabular("lc", r"check (test split) & rate [95\% CI]", rows)

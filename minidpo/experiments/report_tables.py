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
    """Notebook 10 on the instruction pairs: judge win rate vs the reference (paired bootstrap), rude and polite
    rates, words, KL, each at the checkpoint chosen on validation."""
    if "fidelity" in results["instruction"]["rows"]["reference"]:
        return _family_instruction_table_before_issue_27(results)
    rows = []
    for method, r in results["instruction"]["rows"].items():
        judge = _iv(r["judge_vs_reference"]["interval"]) if "judge_vs_reference" in r else "--"
        beta = f"{r['beta']:g}" if r.get("beta") is not None else "--"
        rows.append(f"{_escape(method)} & {beta} & {judge} & {_iv(r['rude_rate'])} & {_iv(r['polite_rate'])} & "
                    f"{r['mean_words']:.1f} & {r['kl']['estimate']:.2f} \\\\")
    return _tabular("lrcccrr", r"loss & $\beta$ & judge vs reference & rude rate & polite rate & words & KL (nats)",
                    rows)


def _family_instruction_table_before_issue_27(results: dict) -> str:
    """The committed family run predates the redesigned headline (issue 27: reference on `output`, Wilson intervals,
    content fidelity); its table is drawn in its own columns until issue 29 reruns the family. Remove then."""
    rows = []
    for method, r in results["instruction"]["rows"].items():
        if method == "reference":
            rows.append(f"reference & -- & -- & -- & {r['mean_words']:.1f} & {r['fidelity']['mean']:.2f} & 0 \\\\")
            continue
        rows.append(f"{_escape(method)} & {r['beta']:g} & {_ci(r['judge_vs_reference'])} & "
                    f"{r['lc_vs_reference']['rate']:.2f} & {r['mean_words']:.1f} & {r['fidelity']['mean']:.2f} & "
                    f"{r['kl']['kl']:.2f} \\\\")
    return _tabular("lrcrrrr", r"loss & $\beta$ & judge vs reference & length-controlled & words & fidelity "
                    r"& KL (nats)", rows)


def _iv(i: dict, fmt: str = ".2f") -> str:
    """An `Interval` as `estimate [low, high]`."""
    return f"{i['estimate']:{fmt}} [{i['low']:{fmt}}, {i['high']:{fmt}}]"


def _arm_label(arm: str) -> str:
    names = {"base": "base", "reference": "reference (SFT on both replies)",
             "preferred_ft": "Preferred-FT (SFT on chosen)"}
    return names.get(arm, arm.replace("dpo_beta", "DPO $\\beta=") + "$" if arm.startswith("dpo_beta") else _escape(arm))


def _ci(v: dict, key: str = "rate", fmt: str = ".2f") -> str:
    return f"{v[key]:{fmt}} [{v['ci_low']:{fmt}}, {v['ci_high']:{fmt}}]"


def _pct(i: dict) -> str:
    """A rate `Interval` in percent: `12.3 [8.0, 16.8]`."""
    return f"{100 * i['estimate']:.1f} [{100 * i['low']:.1f}, {100 * i['high']:.1f}]"


def instruction_table(results: dict) -> str:
    """One row per arm on the test prompts: the checkpoint read (epochs), training seeds, sampled KL to the
    reference, the rude and polite rates in percent (95% bootstrap over prompts), words per reply."""
    rows = []
    for arm, r in results["arms"].items():
        epochs = f"{r['epochs']:g}" if r["epochs"] is not None else "--"
        rows.append(f"{_arm_label(arm)} & {epochs} & {len(r['seeds'])} & {_iv(r['kl'])} & {_pct(r['rude_rate'])} & "
                    f"{_pct(r['polite_rate'])} & {r['mean_words']:.1f} \\\\")
    return _tabular("lrrcccr", r"arm & epochs & seeds & KL (nats) & rude \% & polite \% & words", rows)


def _comparison_row(c: dict, extra: str = "") -> str:
    i = c["interval"]
    value = (f"{i['estimate']:.3f} [{i['low']:.3f}, {i['high']:.3f}]" if c["null"] else
             f"{_num(i['estimate'])} [{_num(i['low'])}, {_num(i['high'])}]")
    return (f"{_escape(c['metric'])} & {_arm_label(c['a'])} vs {_arm_label(c['b'])} & {value} & {c['verdict']}"
            f"{extra} \\\\")


def primary_table(results: dict) -> str:
    """The pre-registered comparisons: a minus b of each primary rate on the test prompts (paired bootstrap), its own
    verdict and the verdict after Holm's correction over the family."""
    rows = [_comparison_row(p["comparison"], f" & {p['holm']}") for p in results["primary"]]
    return _tabular("llccc", r"metric & comparison & a $-$ b [95\% CI] & verdict & Holm", rows)


def secondary_table(results: dict) -> str:
    """The secondary comparisons (judge, length-controlled, answer containment, words), each with its verdict."""
    return _tabular("llcc", r"metric & comparison & estimate [95\% CI] & verdict",
                    [_comparison_row(c) for c in results["secondary"]])


def checks_table(results: dict) -> str:
    """The instruments on model replies: the A/A control (must read no clear difference) and each planted edit,
    with the direction it must read and what was read."""
    checks = results["instrument_checks"]
    rows = [_comparison_row(c, " & no clear difference") for c in checks["aa"]]
    for e in checks["edits"]:
        for c in e["checks"]:
            rows.append(_comparison_row(c["comparison"], f" & {c['expected']}").replace(
                "edited vs original", f"{_escape(e['edit'])} (n={e['changed']})"))
    return _tabular("llccc", r"instrument & control & estimate [95\% CI] & read & must read", rows)


def judge_validation_table(results: dict) -> str:
    """The preference judge's validation on data pairs: held-out pair accuracy (the positive control), relevance,
    refits, and each probe's rate of preferring the edited answer."""
    v = results["judge"]
    acc = v["test_pair_accuracy"]
    rows = [f"chosen beats rejected (test pairs) & {_iv(acc)} \\\\"]
    rows += [f"\\quad {h.replace('_', ' ')} half & {a:.2f} \\\\" for h, a in v["test_pair_accuracy_by_half"].items()]
    rows.append(f"\\quad {len(v['refit_test_pair_accuracy'])} bootstrap refits & "
                f"{min(v['refit_test_pair_accuracy']):.2f}--{max(v['refit_test_pair_accuracy']):.2f} \\\\")
    rows.append(f"own chosen reply beats another prompt's & {_iv(v['relevance_accuracy'])} \\\\")
    names = {"canned_opener": "canned polite opener added", "rude_prefix": "rude prefix added",
             "rude_suffix": "rude suffix added", "duplicated": "answer written twice",
             "polite_off_topic": "polite reply to another prompt"}
    for key, name in names.items():
        rows.append(f"prefers: {name} & {_ci(v['probes'][key], 'prefers_edit')} \\\\")
    rows.append(f"correlation of reward with length & {v['probes']['reward_length_correlation']:+.2f} \\\\")
    return _tabular("lc", r"check (test split) & rate [95\% CI]", rows)

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
    """A booktabs tabular; `L{width}` is a ragged-right paragraph column (defined in report/main.tex)."""
    return "\n".join([f"\\begin{{tabular}}{{{columns}}}", r"\toprule", header + r" \\", r"\midrule", *rows,
                      r"\bottomrule", r"\end{tabular}"]) + "\n"


def _reward_cells(r: dict) -> str:
    """`true reward [95% CI]` of one scored run."""
    lo, hi = r["reward_ci"]
    return f"{_num(r['reward'])} [{_num(lo)}, {_num(hi)}]"


def frontier_table(results: dict) -> str:
    """Every point of the frontier experiment's curves: method, knob, checkpoint, seeds, true reward [95% CI over
    prompts], the range of the seeds' rewards, KL +- s.e., and for PPO the calibrated reward model's score of the
    same replies; then the reference points (SFT, Preferred-FT, best-of-N)."""
    rows = []
    kl_coef = "\\beta_{\\mathrm{KL}}"
    unit = {"epochs": "ep.", "iterations": "it."}
    for method, curves in results["curves"].items():
        for curve in curves:
            knob = f"$\\beta={curve['beta']:g}$" if curve["knob"] == "beta" else f"${kl_coef}={curve['kl_coef']:g}$"
            for p in curve["points"]:
                spread = f"{_num(min(p['seed_rewards']))} to {_num(max(p['seed_rewards']))}"
                rm = _num(p["rm_score"]) if "rm_score" in p else "--"
                kl = f"{_num(p['kl'], '.2f')} $\\pm$ {p['kl_se']:.2f}"
                rows.append(f"{method} & {knob} & {p['budget']:g} {unit[curve['budget_unit']]} & "
                            f"{len(curve['seeds'])} & {_reward_cells(p)} & {spread} & {kl} & {rm} \\\\")
    ref = results["reference_points"]
    rows.append(r"\midrule")
    rows.append(f"SFT & -- & -- & 1 & {_reward_cells(ref['SFT'])} & -- & 0 & {_num(ref['SFT']['rm_score'])} \\\\")
    pft = ref["Preferred-FT"]
    rows.append(f"Preferred-FT & -- & 1 ep. & 1 & {_reward_cells(pft)} & -- & "
                f"{_num(pft['kl'], '.2f')} $\\pm$ {pft['kl_se']:.2f} & -- \\\\")
    rows += [f"Best-of-$N$ & $N={r['best_of']}$ & -- & 1 & {_reward_cells(r)} & -- & {r['kl']:.2f} (bound) & -- \\\\"
             for r in ref["Best-of-N"]]
    return _tabular("lllccccr", r"method & knob & checkpoint & seeds & true reward [95\% CI] & seeds' range "
                    r"& KL (nats) & $r_\phi$ (cal.)", rows)


def matched_kl_table(results: dict) -> str:
    """DPO against PPO and PPO-GT: every matched-KL reading of the plan (where it sits, the KL there, both curves'
    rewards, DPO minus the other with its 95% interval, and Holm's call), then each comparison's verdict and power."""
    rows = []
    for name, v in results["matched_kl"].items():
        other = _escape(name)
        for r in v["readings"]:
            i = r["comparison"]["interval"]
            at_curve, _, at_checkpoint = r["at"].rpartition(" at ")
            at = f"{'DPO' if at_curve == r['dpo'] else other} {at_checkpoint}"
            rows.append(f"{_curve_label(r['dpo'])} & {_curve_label(r['other'])} & {at} & {r['kl']:.2f} & "
                        f"{_num(r['dpo_reward'])} & {_num(r['other_reward'])} & "
                        f"{_num(i['estimate'])} [{_num(i['low'])}, {_num(i['high'])}] & "
                        f"{100 * r['out_of_range'] / r['n_boot']:.0f}\\% & {r['holm_verdict'] or 'not counted'} \\\\")
        power = (f"; detects about {v['detectable_difference']:.3f} with 80\\% power"
                 if v["detectable_difference"] is not None else "")
        rows.append(f"\\multicolumn{{9}}{{r}}{{\\emph{{verdict against {other}: {v['verdict']} ({v['counted']} of "
                    f"{len(v['readings'])} readings counted{power})}}}} \\\\")
    return _tabular("lllrrrcrl", r"DPO & other & at & KL & DPO & other & DPO $-$ other [95\% CI] & out & Holm", rows)


def _curve_label(curve: str) -> str:
    """"PPO kl_coef=0.1" -> "PPO $\\beta_{\\mathrm{KL}}=0.1$", "DPO beta=0.1" -> "DPO $\\beta=0.1$"."""
    method, _, knob = curve.rpartition(" ")
    name, _, value = knob.partition("=")
    symbol = {"beta": "\\beta", "kl_coef": "\\beta_{\\mathrm{KL}}"}.get(name)
    return f"{_escape(method)} ${symbol}={value}$" if symbol and value else _escape(curve)


def budgets_table(results: dict) -> str:
    """Label and compute budgets per method (`frontier_run.budgets_table`)."""
    rows = [f"{b['method']} & {b['preference_pairs']} & {b['true_reward_calls']} & {b['choice_true_reward_calls']} & "
            f"{b['policy_samples']} & {b['train_seconds']:.0f} & {_escape(b['shared'])} & "
            f"{b['shared_seconds']:.0f} \\\\"
            for b in results["budgets"]]
    return _tabular("lrrrrrL{4.6cm}r", r"method & pairs & $r^*$ train & $r^*$ choices & samples & "
                    r"train s & shared work & shared s", rows)


def ppo_stability_table(results: dict) -> str:
    """PPO's learning-rate pilot on the validation prompts: each learning rate's first and largest approxkl, its
    validation reward, KL and objective, whether it was stable, whether it kept under the pilot's threshold (a
    fraction of the stability threshold), and which was chosen."""
    pilot = results["ppo_pilot"]
    rows = []
    for r in pilot["runs"]:
        chosen = "chosen" if r["learning_rate"] == pilot["learning_rate"] else ""
        objective = r["validation_reward"] - pilot["kl_coef"] * r["validation_kl"]
        rows.append(f"{_sci(r['learning_rate'])} & {r['first_approxkl']:.4f} & {r['max_approxkl']:.4f} & "
                    f"{_num(r['validation_reward'])} & {_num(r['validation_kl'], '.2f')} & {_num(objective)} & "
                    f"{'yes' if r['stable'] else 'no'} & {'yes' if r['eligible'] else 'no'} & {chosen} \\\\")
    return _tabular("lrrrrrlll", r"learning rate & approxkl, it.\,1 & max approxkl & val.\ reward & val.\ KL & "
                    rf"objective & stable & ${{<}}\,{pilot['pilot_threshold']:g}$ & ", rows)


def _sci(x: float) -> str:
    mantissa, exponent = f"{x:.0e}".split("e")
    return f"${mantissa}\\times10^{{{int(exponent)}}}$"


def variants_table(results: dict) -> str:
    """Notebook 09 on the sentiment base (results/variants_<profile>.json): DPO and its variants."""
    rows = []
    for r in [*results["dpo"], *results["variant_runs"]]:
        acc = [h for h in r["history"] if "eval_rewards/accuracies" in h][-1]["eval_rewards/accuracies"]
        method = "DPO (sigmoid)" if r["method"] == "DPO" else _escape(r["method"])
        rows.append(f"{method} & {r['beta']:g} & {_reward_cells(r)} & {r['kl']:.2f} $\\pm$ {r['kl_se']:.2f} & "
                    f"{acc:.2f} \\\\")
    return _tabular("lrrcrr", r"loss & $\beta$ & true reward & 95\% CI & KL (nats) & held-out pair acc.", rows)


def family_arms_table(results: dict) -> str:
    """Notebook 10: each arm's curve (beta, the grid value chosen on validation, KL at its checkpoints, reward and
    length-adjusted reward at its last one, reply tokens) and its primary reading against DPO at matched KL (which
    reward, counted readings, Holm's verdict, the difference it would detect with 80% power)."""
    rows = []
    for method, a in results["arms"].items():
        curve = results["curves"][method][0]
        last = curve["points"][-1]
        value = "--" if a["grid"] is None else f"{_escape(a['grid']['parameter'])}={a['value']:g}"
        v = a["verdicts"][a["verdicts"]["primary"]]
        detect = "--" if v["detectable_difference"] is None else f"{v['detectable_difference']:.3f}"
        kls = "--".join(f"{p['kl']:.2f}" for p in curve["points"])
        rows.append(f"{_escape(method)} & {curve['beta']:g} & {value} & {kls} & {_num(last['reward'])} & "
                    f"{_num(last['length_adjusted_reward'])} & {last['reply_tokens']:.1f} & "
                    f"{a['verdicts']['primary']} & {v['counted']}/{len(v['readings'])} & {v['verdict']} & "
                    f"{detect} \\\\")
    return _tabular("L{4.2cm}rlcrrrlrL{3.4cm}r", r"arm & $\beta$ & chosen & KL (nats) & reward & adjusted & "
                    r"tokens & read on & counted & verdict & detects", rows)


def family_grid_table(results: dict) -> str:
    """Notebook 10's choices on validation: each arm's grid, one seed, scored on the validation prompts."""
    rows = []
    for method, a in results["arms"].items():
        g = a["grid"]
        if g is None:
            continue
        for i, value in enumerate(g["values"]):
            chosen = "chosen" if value == g["chosen"] else ""
            rows.append(f"{_escape(method)} & {_escape(g['parameter'])}={value:g} & "
                        f"{_num(g['validation_reward'][i])} & "
                        f"{g['validation_kl'][i]:.2f} & {_num(g['objective'][i])} & {chosen} \\\\")
    return _tabular("llrrrl", r"arm & value & val.\ reward & val.\ KL & objective & ", rows)


def _iv(i: dict, fmt: str = ".2f") -> str:
    """An `Interval` as `estimate [low, high]`."""
    return f"{i['estimate']:{fmt}} [{i['low']:{fmt}}, {i['high']:{fmt}}]"


def _arm_label(arm: str) -> str:
    names = {"base": "base", "reference": "reference (SFT on both replies)",
             "preferred_ft": "Preferred-FT (SFT on chosen)"}
    return names.get(arm, arm.replace("dpo_beta", "DPO $\\beta=") + "$" if arm.startswith("dpo_beta") else _escape(arm))


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
    return _tabular("L{3.1cm}rrcccr", r"arm & epochs & seeds & KL (nats) & rude \% & polite \% & words", rows)


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
    return _tabular("L{1.5cm}L{5.2cm}cL{1.7cm}L{1.7cm}", r"metric & comparison & a $-$ b [95\% CI] & verdict & Holm",
                    rows)


def secondary_table(results: dict) -> str:
    """The secondary comparisons (judge, length-controlled, answer containment, words), each with its verdict."""
    return _tabular("L{3.2cm}L{5.2cm}cL{1.9cm}", r"metric & comparison & estimate [95\% CI] & verdict",
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
    return _tabular("L{2.3cm}L{4.6cm}cL{1.7cm}L{1.7cm}", r"instrument & control & estimate [95\% CI] & read & "
                    r"must read", rows)


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
        rows.append(f"prefers: {name} & {_iv(v['probes'][key])} \\\\")
    rows.append(f"correlation of reward with length & {v['probes']['reward_length_correlation']:+.2f} \\\\")
    return _tabular("lc", r"check (test split) & rate [95\% CI]", rows)


_UNICODE_TEXT = {"\u2019": "'", "\u2018": "`", "\u201c": "``", "\u201d": "''", "\u2013": "--", "\u2014": "---",
                 "\u2192": r"$\to$", "\u2248": r"$\approx$", "\u00d7": r"$\times$", "\u00b0": r"\textdegree{}",
                 "\u2026": r"\ldots{}"}


def _reply_text(text: str, words: int) -> str:
    """A reply as LaTeX text: its first `words` words, escaped; characters pdfLaTeX's fonts lack (other scripts,
    emoji) shown as a centred dot, so a reader sees that something was there."""
    cut = text.split()
    text = " ".join(cut[:words]) + (" \u2026" if len(cut) > words else "")
    out = []
    for ch in _escape(text):
        if ch in _UNICODE_TEXT:
            out.append(_UNICODE_TEXT[ch])
        elif ord(ch) < 128 or ch.isalpha() and ord(ch) < 0x180:  # ASCII, Latin-1 and Latin Extended-A letters
            out.append(ch)
        else:
            out.append(r"$\cdot$")
    return "".join(out)


def samples_table(results: dict, samples: list[dict], prompts: int = 3, words: int = 40) -> str:
    """The first `prompts` test prompts (in test order, not chosen by what the replies say) and every arm's first
    reply to each (training seed 0, sample set 0), cut to `words` words: what the rates of Table instruction count."""
    first = {}
    for s in samples:
        if s["seed"] == 0 and s["sample_set"] == 0:
            first.setdefault(s["prompt_id"], {})[s["arm"]] = s["reply"]
    ids = list(first)[:prompts]
    rows = []
    for k, pid in enumerate(ids):
        example = results["examples"][k]  # the same test order: its reference reply must be this prompt's
        if example["reference"] != first[pid]["reference"]:
            raise ValueError(f"samples: prompt {pid} is not results['examples'][{k}] (the reference replies differ)")
        rows.append(f"\\multicolumn{{2}}{{L{{15cm}}}}{{\\textbf{{Test prompt {pid}:}} "
                    f"\\emph{{{_reply_text(example['prompt'], 60)}}}}} \\\\")
        rows += [f"{_arm_label(arm)} & {_reply_text(first[pid][arm], words)} \\\\" for arm in results["arms"]]
        rows.append(r"\midrule" if k < len(ids) - 1 else "")
    return _tabular("L{3.1cm}L{11.6cm}", r"arm & reply (first of its samples)", [r for r in rows if r])

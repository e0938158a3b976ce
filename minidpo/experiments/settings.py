"""The command line sets the plan: `--set dpo.learning_rate=1e-6` (`apply_overrides`) on the command's plan of a
profile (`override_profile`), each value read as the type of the field it replaces and checked by the config
that holds it; a wrong name or value is an error naming the field."""

from __future__ import annotations

import dataclasses
from dataclasses import replace

from .profiles import Profile

# fields each run sets itself: setting them in the plan would do nothing, so it is refused with what to set instead
_PER_RUN = {"output_dir": "each run writes to its own stage folder", "seed": "the profile's seed (run: --seed)",
            "show_progress": "set per call", "use_cpu": "the profile's device ($MINIDPO_DEVICE)"}
_SWEPT = {"dpo.beta": "betas (instruction) or dpo_betas (frontier)", "dpo.loss_type": "each arm sets its loss",
          "dpo.label_smoothing": "each variant sets its own", "ppo.kl_coef": "kl_coefs",
          "ppo.max_new_tokens": "max_new_tokens (the plan's, shared by every policy)"}
# the frontier's seeded runs stop at their checkpoints: the length of training is the checkpoints'
_SWEPT_FRONTIER = {"dpo.num_epochs": "dpo_checkpoints", "dpo.max_steps": "dpo_checkpoints",
                   "ppo.iterations": "ppo_checkpoints", "reward_model.num_epochs": "reward_model_epochs",
                   "reward_model.max_steps": "reward_model_epochs"}
# so do the instruction experiment's runs (each stops at its checkpoints, in epochs)
_SWEPT_INSTRUCTION = {f"{run}.{field}": budgets for run, budgets in (
    ("reference", "reference_checkpoints"), ("preferred_ft", "checkpoints"), ("dpo", "checkpoints"))
    for field in ("num_epochs", "max_steps")}
_SWEPT_BY_PLAN = {"frontier": _SWEPT_FRONTIER, "instruction": _SWEPT_INSTRUCTION}


def _parse(text: str, current, where: str):
    """`text` read as the type of the field's current value (a tuple: comma-separated, as its first element)."""
    if isinstance(current, tuple):
        if current and dataclasses.is_dataclass(current[0]):
            kind = type(current[0]).__name__
            raise ValueError(f"--set {where}: a list of {kind}s cannot be set from the command line")
        kind = type(current[0]) if current else float
        return tuple(_parse(x.strip(), kind(), where) for x in text.split(",") if x.strip())
    try:
        if isinstance(current, bool):
            if text.lower() not in ("true", "false", "1", "0"):
                raise ValueError("expected true or false")
            return text.lower() in ("true", "1")
        if isinstance(current, int):
            return int(text)
        if isinstance(current, float):
            return float(text)
        if current is None:  # optional (max_steps, n_dpo, sentence_encoder): "none" keeps it unset
            if text.lower() == "none":
                return None
            for kind in (int, float):
                try:
                    return kind(text)
                except ValueError:
                    pass
            return text
    except ValueError as e:
        raise ValueError(f"--set {where}: cannot read {text!r} as {type(current).__name__} ({e})") from None
    if dataclasses.is_dataclass(current):
        raise ValueError(f"--set {where}: a group of settings; set one of its fields, e.g. {where}.learning_rate=...")
    return text


def _set(obj, path: list[str], text: str, where: str):
    name = path[0]
    names = [f.name for f in dataclasses.fields(obj)]
    if name not in names:
        raise ValueError(f"--set {where}: {type(obj).__name__} has no field {name!r}; its fields: {', '.join(names)}")
    current = getattr(obj, name)
    value = _set(current, path[1:], text, where) if len(path) > 1 else _parse(text, current, where)
    try:
        return replace(obj, **{name: value})
    except (ValueError, TypeError) as e:  # the config's own check, e.g. "learning_rate must be > 0"
        raise ValueError(f"--set {where}: {e}") from None


def apply_overrides(plan, assignments: list[str] | tuple[str, ...] = (), swept: dict | None = None):
    """`plan` with each "a.b=value" of `assignments` set (e.g. "dpo.learning_rate=1e-6", "betas=0.1,0.5"),
    read as the type of the field it replaces. An unknown field, a value of the wrong type, one the config's
    checks refuse, or a field the runs set themselves (`_PER_RUN`, `_SWEPT`, and `swept`) raises ValueError
    naming it."""
    refused = {**_SWEPT, **(swept or {})}
    for assignment in assignments:
        where, sep, text = assignment.partition("=")
        where = where.strip()
        if not sep or not where:
            raise ValueError(f"--set {assignment!r}: expected field=value, e.g. dpo.learning_rate=1e-6")
        last = where.split(".")[-1]
        if where in refused and hasattr(plan, where.split(".")[0]):
            raise ValueError(f"--set {where}: the runs set it themselves; set {refused[where]} instead")
        if "." in where and last in _PER_RUN:
            raise ValueError(f"--set {where}: the runs set it themselves ({_PER_RUN[last]})")
        plan = _set(plan, where.split("."), text.strip(), where)
    return plan


def override_profile(profile: Profile, plan_field: str, assignments: list[str] | tuple[str, ...] = ()) -> Profile:
    """`profile` with `assignments` applied to the command's plan `plan_field` ("instruction", "frontier",
    "family", "sentiment"). `family` runs on the frontier's plan too, so its assignments may start with its name
    ("frontier.dpo.learning_rate=..."); for the other commands a name of another plan is refused: that plan is not
    run."""
    others = {"family": ("frontier",)}.get(plan_field, ())
    plans = {f.name for f in dataclasses.fields(profile) if dataclasses.is_dataclass(getattr(profile, f.name))}
    for assignment in assignments:
        head, _, rest = assignment.partition(".")
        own = getattr(profile, plan_field)
        if head in plans and head != plan_field and not hasattr(own, head):
            if head not in others:
                raise ValueError(f"--set {assignment.partition('=')[0]}: this command runs the {plan_field} plan, not "
                                 f"the {head} plan")
            profile = replace(profile, **{head: apply_overrides(getattr(profile, head), [rest],
                                                                _SWEPT_BY_PLAN.get(head))})
        else:
            swept = _SWEPT_BY_PLAN.get(plan_field)
            profile = replace(profile, **{plan_field: apply_overrides(own, [assignment], swept)})
    return profile

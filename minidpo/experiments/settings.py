"""The command line sets the plan: `--set dpo.learning_rate=1e-6` (`apply_overrides`) on the command's plan of a
profile (`override_profile`), each value read as the type of the field it replaces and checked by the config
that holds it; a wrong name or value is an error naming the field."""

from __future__ import annotations

import dataclasses
from dataclasses import replace

from .profiles import Profile

# fields a sweep replaces: setting them would do nothing, so it is refused with what to set instead
_SWEPT = {"dpo.beta": "betas (instruction) or dpo_betas (frontier)", "ppo.kl_coef": "kl_coefs or ppo_gt_kl_coefs"}


def _parse(text: str, current, where: str):
    """`text` read as the type of the field's current value (a tuple: comma-separated, as its first element)."""
    if isinstance(current, tuple):
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
        if current is None:  # an optional number (max_steps, n_dpo): "none" keeps it unset
            return None if text.lower() == "none" else (int(text) if text.lstrip("-").isdigit() else float(text))
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


def apply_overrides(plan, assignments: list[str] | tuple[str, ...] = ()):
    """`plan` with each "a.b=value" of `assignments` set (e.g. "dpo.learning_rate=1e-6", "betas=0.1,0.5"),
    read as the type of the field it replaces; an unknown field, a value of the wrong type or one the config's
    checks refuse raises ValueError naming it."""
    for assignment in assignments:
        where, sep, text = assignment.partition("=")
        where = where.strip()
        if not sep or not where:
            raise ValueError(f"--set {assignment!r}: expected field=value, e.g. dpo.learning_rate=1e-6")
        if where in _SWEPT and dataclasses.is_dataclass(plan) and hasattr(plan, where.split(".")[0]):
            raise ValueError(f"--set {where}: the plan sweeps it; set {_SWEPT[where]} instead")
        plan = _set(plan, where.split("."), text.strip(), where)
    return plan


def override_profile(profile: Profile, plan_field: str, assignments: list[str] | tuple[str, ...] = ()) -> Profile:
    """`profile` with `assignments` applied to its plan `plan_field` (the command's: "instruction", "frontier",
    "family"); an assignment whose first name is another plan of the profile ("sentiment.dpo.learning_rate=...")
    goes to that plan instead."""
    plans = {f.name for f in dataclasses.fields(profile) if dataclasses.is_dataclass(getattr(profile, f.name))}
    for assignment in assignments:
        head, _, rest = assignment.partition(".")
        own = getattr(profile, plan_field)
        if head in plans and head != plan_field and not hasattr(own, head):
            profile = replace(profile, **{head: apply_overrides(getattr(profile, head), [rest])})
        else:
            profile = replace(profile, **{plan_field: apply_overrides(own, [assignment])})
    return profile

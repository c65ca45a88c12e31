"""Forms <-> the APIs' JSON: the campaign form, the tag-rule form and the scoring plan form.

Pure. Values go to the API as typed: the API validates (it is the one place the rules live) and
its 422 comes back here to be placed at the field it names (`errors_at_fields`). Only what the API
could not receive at all (JSON that does not parse) is refused here.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from shared.channels import MESSAGING_CHANNELS

from .views import split_tags

FORM_ERROR = "_form"  # errors that belong to no field: shown above the form

CAMPAIGN_GROUPS = ("trigger", "audience", "action", "action.content", "frequency_cap")
CAMPAIGN_FIELDS = (
    "id",
    "name",
    "status",
    "trigger.on",
    "trigger.value",
    "trigger.delay_hours",
    "audience.layers",
    "audience.orientations",
    "audience.stages",
    "audience.bands",
    "audience.tags_all",
    "audience.tags_none",
    "action.kind",
    "action.channel",
    "action.content.rational",
    "action.content.emotional",
    "action.content.default",
    "action.variants",
    "action.points",
    "action.group_template",
    "action.sla_hours",
    "steps",
    "holdout_pct",
    "frequency_cap.per_customer_per_day",
    "reentry",
    "reentry_after_days",
    "exit_on_conversion",
    "priority",
    "respect_quiet_hours",
)
CAMPAIGN_LISTS = ("audience.layers", "audience.orientations", "audience.stages", "audience.bands")
CAMPAIGN_TAGS = ("audience.tags_all", "audience.tags_none")
CAMPAIGN_CHECKBOXES = ("exit_on_conversion", "respect_quiet_hours")  # `reentry`: a select of its modes
CAMPAIGN_JSON = ("action.variants", "steps")  # lists edited as JSON text
TRIGGER_KINDS = ("band_entered", "band_left", "activity_entered", "tag_added", "layer_entered", "event")
ACTION_KINDS = ("send_content", "invite_group", "assign_dealer", "grant_points")
# The messaging channels, then a consultant's task list and the membership account.
CHANNELS = (*MESSAGING_CHANNELS, "dealer", "membership")

Form = Mapping[str, Sequence[str]]  # field -> every value posted for it


def _set(target: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for parent in parents:
        target = target.setdefault(parent, {})
    target[leaf] = value


def _first(form: Form, name: str) -> str:
    values = form.get(name) or [""]
    return values[0].strip()


def campaign_of(form: Form) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """The campaign definition a form describes, and the errors found before the API (bad JSON)."""
    definition: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for name in CAMPAIGN_FIELDS:
        if name in CAMPAIGN_LISTS:
            _set(definition, name, [v for v in form.get(name, []) if v])
        elif name in CAMPAIGN_TAGS:
            _set(definition, name, split_tags(_first(form, name)))
        elif name in CAMPAIGN_CHECKBOXES:
            _set(definition, name, bool(form.get(name)))
        elif name in CAMPAIGN_JSON:
            text = _first(form, name)
            try:
                items = json.loads(text) if text else []
            except ValueError as error:
                errors[name] = [f"not JSON: {error}"]
                continue
            if items:
                _set(definition, name, items)
        elif value := _first(form, name):  # left empty: the API's default
            _set(definition, name, value)
    content = definition.get("action", {}).get("content")
    if content is not None and not content.get("default") and not any(content.values()):
        del definition["action"]["content"]
    return definition, errors


def campaign_form(definition: Mapping[str, Any]) -> dict[str, Any]:
    """The form's values for a definition (to edit it, or to show a refused one back)."""
    values: dict[str, Any] = {}
    for name in CAMPAIGN_FIELDS:
        node: Any = definition
        for part in name.split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        if name in CAMPAIGN_LISTS:
            values[name] = list(node or [])
        elif name in CAMPAIGN_TAGS:
            values[name] = ", ".join(node or [])
        elif name in CAMPAIGN_CHECKBOXES:
            values[name] = bool(node)
        elif name == "reentry" and isinstance(node, bool):  # a definition from before the modes
            values[name] = "always" if node else "never"
        elif name in CAMPAIGN_JSON:
            values[name] = json.dumps(node, ensure_ascii=False, indent=1) if node else ""
        else:
            values[name] = "" if node is None else str(node)
    return values


def new_campaign_form() -> dict[str, Any]:
    return campaign_form(
        {
            "status": "active",
            "trigger": {"on": "band_entered", "value": "high"},
            "action": {"kind": "send_content", "channel": "wecom_1v1"},
            "holdout_pct": 10,
            "frequency_cap": {"per_customer_per_day": 1},
            "reentry": "never",
            "exit_on_conversion": True,
            "respect_quiet_hours": True,
        }
    )


def errors_at_fields(detail: Any, fields: Iterable[str]) -> dict[str, list[str]]:
    """A FastAPI 422 `detail` placed at the form's fields: each error goes to the longest field
    (or group of fields) its `loc` starts with; the rest to FORM_ERROR."""
    known = set(fields)
    placed: dict[str, list[str]] = {}
    items = detail if isinstance(detail, list) else [{"msg": str(detail)}]
    for item in items:
        if not isinstance(item, Mapping):
            placed.setdefault(FORM_ERROR, []).append(str(item))
            continue
        loc = [str(part) for part in item.get("loc", []) if part != "body"]
        message = str(item.get("msg", "invalid")).removeprefix("Value error, ")
        target = FORM_ERROR
        for end in range(len(loc), 0, -1):
            if (candidate := ".".join(loc[:end])) in known:
                target = candidate
                break
        placed.setdefault(target, []).append(message)
    return placed


def audience_filters(audience: Mapping[str, Any]) -> list[tuple[str, str]]:
    """A campaign's audience as the tagging API's segment filters (for the audience estimate)."""
    params: list[tuple[str, str]] = []
    for field, param in (
        ("layers", "layer"),
        ("orientations", "orientation"),
        ("stages", "stage"),
        ("bands", "band"),
        ("tags_all", "tag"),
        ("tags_none", "not_tag"),
    ):
        params += [(param, str(value)) for value in audience.get(field) or []]
    return params


RULE_FIELDS = (
    "tag",
    "description",
    "counts",
    "intent_pct_at_least",
    "intent_pct_below",
    "layers",
    "orientations",
    "stages",
    "tags_all",
    "tags_none",
)


def rule_of(form: Form) -> tuple[dict[str, Any], dict[str, list[str]]]:
    rule: dict[str, Any] = {"tag": _first(form, "tag"), "description": _first(form, "description")}
    errors: dict[str, list[str]] = {}
    text = _first(form, "counts")
    try:
        rule["counts"] = json.loads(text) if text else []
    except ValueError as error:
        errors["counts"] = [f"not JSON: {error}"]
    for name in ("intent_pct_at_least", "intent_pct_below"):
        if value := _first(form, name):
            rule[name] = value
    for name in ("layers", "orientations", "stages"):
        rule[name] = [v for v in form.get(name, []) if v]
    for name in ("tags_all", "tags_none"):
        rule[name] = split_tags(_first(form, name))
    return rule, errors


def rule_form(rule: Mapping[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {name: rule.get(name) for name in RULE_FIELDS}
    values["counts"] = json.dumps(rule.get("counts") or [], ensure_ascii=False, indent=1)
    for name in ("tags_all", "tags_none"):
        values[name] = ", ".join(rule.get(name) or [])
    for name in ("layers", "orientations", "stages"):
        values[name] = list(rule.get(name) or [])
    for name in ("intent_pct_at_least", "intent_pct_below", "description", "tag"):
        values[name] = "" if values[name] is None else str(values[name])
    return values


PLAN_SCALARS = ("half_life_days", "pct_scale", "emit_min_pct_change")
PLAN_BANDS = ("medium", "high", "hot")
PLAN_SECTIONS = ("source_multipliers", "points", "growth", "levels", "activity")


def plan_of(form: Form, weights: Iterable[str]) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """The plan a form describes: scalars, band thresholds and weights as fields; the other
    sections as JSON. `weights` names the behaviours the form shows."""
    plan: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for name in PLAN_SCALARS:
        plan[name] = _first(form, name)
    plan["bands"] = {band: _first(form, f"bands.{band}") for band in PLAN_BANDS}
    plan["weights"] = {}
    for behaviour in weights:
        if value := _first(form, f"weights.{behaviour}"):
            plan["weights"][behaviour] = value
    if extra := _first(form, "weights._new_name"):  # one behaviour may be added per save
        plan["weights"][extra] = _first(form, "weights._new_value") or "0"
    for section in PLAN_SECTIONS:
        text = _first(form, section)
        try:
            plan[section] = json.loads(text) if text else {}
        except ValueError as error:
            errors[section] = [f"not JSON: {error}"]
    return plan, errors


def plan_form(plan: Mapping[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {name: str(plan.get(name, "")) for name in PLAN_SCALARS}
    for band in PLAN_BANDS:
        values[f"bands.{band}"] = str(plan.get("bands", {}).get(band, ""))
    values["weights"] = {k: str(v) for k, v in sorted(plan.get("weights", {}).items())}
    for section in PLAN_SECTIONS:
        values[section] = json.dumps(plan.get(section, {}), ensure_ascii=False, indent=1)
    return values


def plan_fields(weights: Iterable[str]) -> list[str]:
    return [
        *PLAN_SCALARS,
        "bands",
        *(f"bands.{b}" for b in PLAN_BANDS),
        "weights",
        *(f"weights.{w}" for w in weights),
        *PLAN_SECTIONS,
    ]

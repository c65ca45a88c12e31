"""Prometheus rules and Grafana dashboards (deploy/): well-formed, and only about metrics the code exports.

With `promtool` on PATH (Debian package `prometheus`) the rules, the config and the alert unit tests
in deploy/prometheus/tests run through it; the schema-level checks here run either way.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import warnings
from collections import defaultdict
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
RULE_FILES = sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
DASHBOARD_FILES = sorted((ROOT / "deploy" / "grafana" / "dashboards").glob("*.json"))
DATASOURCES = ROOT / "deploy" / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
DESIGN = ROOT / "docs" / "contract.md"

# docs/contract.md's "Metrics" section: the contract every dashboard set must show.
CONTRACT_METRICS = {
    "pd_ingest_events_total",
    "pd_ingest_request_seconds",
    "pd_events_processed_total",
    "pd_event_to_action_seconds",
    "pd_campaign_actions_total",
    "pd_consumer_lag",
    "pd_ingest_event_count_failures_total",
    "pd_console_request_seconds",
    "pd_campaign_leads",
    "pd_campaign_sla_misses_total",
}
SEVERITIES = {"critical", "warning", "info"}
METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
DURATION = re.compile(r"(\d+(ms|s|m|h|d|w|y))+")
# What Prometheus itself makes for every target.
SCRAPE_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
# What the exporters the compose stack scrapes export and our dashboards and rules use
# (redis_exporter, kafka-exporter): named here, since no code of ours defines them.
EXPORTER_SERIES = {
    "redis_memory_used_bytes",
    "redis_commands_processed_total",
    "redis_connected_clients",
    "redis_db_keys",
    "redis_uptime_in_seconds",
    "redis_up",
    "kafka_brokers",
    "kafka_topic_partition_current_offset",
    "kafka_consumergroup_lag",
    "kafka_topic_partition_under_replicated_partition",
    "kafka_topic_partition_in_sync_replica",
}


# --- the rules ------------------------------------------------------------------------------


def load_rules() -> list[dict[str, Any]]:
    return [yaml.safe_load(path.read_text()) for path in RULE_FILES]


def all_rules() -> Iterator[dict[str, Any]]:
    for document in load_rules():
        for group in document["groups"]:
            yield from group["rules"]


def rule_schema_problems(document: object, where: str) -> list[str]:
    """What `promtool check rules` would reject, as far as structure goes."""
    if not isinstance(document, dict) or set(document) != {"groups"}:
        return [f"{where}: a mapping with `groups` only"]
    problems = []
    groups = document["groups"]
    if not isinstance(groups, list) or not groups:
        return [f"{where}: `groups` is a non-empty list"]
    names = [g.get("name") for g in groups if isinstance(g, dict)]
    if len(names) != len(groups) or len(set(names)) != len(names) or not all(names):
        problems.append(f"{where}: every group has a unique name")
    for group in groups:
        rules = group.get("rules") if isinstance(group, dict) else None
        if not isinstance(rules, list) or not rules:
            problems.append(f"{where}/{group}: `rules` is a non-empty list")
            continue
        for rule in rules:
            at = f"{where}/{group['name']}/{rule.get('record') or rule.get('alert')}"
            kinds = {"record", "alert"} & set(rule)
            if len(kinds) != 1:
                problems.append(f"{at}: exactly one of record or alert")
                continue
            if not isinstance(rule.get("expr"), str) or not rule["expr"].strip():
                problems.append(f"{at}: expr is a non-empty string")
            if "record" in rule:
                if not METRIC_NAME.fullmatch(rule["record"]):
                    problems.append(f"{at}: record is not a metric name")
                if set(rule) - {"record", "expr", "labels"}:
                    problems.append(f"{at}: unknown keys {set(rule) - {'record', 'expr', 'labels'}}")
                continue
            allowed = {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}
            if set(rule) - allowed:
                problems.append(f"{at}: unknown keys {set(rule) - allowed}")
            if not re.fullmatch(r"[A-Z][A-Za-z0-9]+", rule["alert"]):
                problems.append(f"{at}: alert names are CamelCase")
            if not DURATION.fullmatch(str(rule.get("for", ""))):
                problems.append(f"{at}: `for` is a duration")
            if rule.get("labels", {}).get("severity") not in SEVERITIES:
                problems.append(f"{at}: labels.severity in {sorted(SEVERITIES)}")
            if not rule.get("annotations", {}).get("summary"):
                problems.append(f"{at}: annotations.summary")
    return problems


def config_schema_problems(config: dict[str, Any]) -> list[str]:
    problems = []
    jobs = [job["job_name"] for job in config["scrape_configs"]]
    if len(set(jobs)) != len(jobs):
        problems.append("job names are unique")
    for job in config["scrape_configs"]:
        for static in job["static_configs"]:
            bad = [t for t in static["targets"] if not re.fullmatch(r"[\w.-]+:\d+", t)]
            if bad:
                problems.append(f"{job['job_name']}: targets are host:port, not {bad}")
            if "service" in static.get("labels", {}):
                problems.append(f"{job['job_name']}: a `service` target label renames the workers' own")
    matched = {p for pattern in config["rule_files"] for p in PROMETHEUS_DIR.glob(pattern)}
    if matched != set(RULE_FILES):
        problems.append(f"rule_files {config['rule_files']} load {sorted(matched)}, not {RULE_FILES}")
    return problems


def test_rule_files_exist() -> None:
    assert {p.name for p in RULE_FILES} >= {"recording.yml", "alerts.yml"}


def test_rules_and_config_pass_the_schema_level_check() -> None:
    """Runs whether promtool is there or not."""
    problems = [
        p for path in RULE_FILES for p in rule_schema_problems(yaml.safe_load(path.read_text()), path.name)
    ]
    problems += config_schema_problems(yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text()))
    assert problems == []


def test_the_schema_level_check_finds_broken_rules() -> None:
    broken = {
        "groups": [
            {
                "name": "g",
                "rules": [
                    {"record": "a b", "expr": "up"},
                    {"alert": "X", "record": "y", "expr": "up"},
                    {"alert": "NoSeverity", "expr": "up == 0", "for": "1m", "annotations": {"summary": "s"}},
                    {
                        "alert": "NoFor",
                        "expr": "up == 0",
                        "labels": {"severity": "critical"},
                        "annotations": {"summary": "s"},
                    },
                ],
            }
        ]
    }
    assert rule_schema_problems(broken, "b") == [
        "b/g/a b: record is not a metric name",
        "b/g/y: exactly one of record or alert",
        "b/g/NoSeverity: labels.severity in ['critical', 'info', 'warning']",
        "b/g/NoFor: `for` is a duration",
    ]


def test_rules_pass_promtool_or_the_schema_check() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        warnings.warn(
            "promtool not found (apt-get install prometheus): schema-level check only", stacklevel=1
        )
        test_rules_and_config_pass_the_schema_level_check()
        return
    for args in (
        ["check", "config", "prometheus.yml"],  # loads the rule files too
        ["check", "rules", *(str(p.relative_to(PROMETHEUS_DIR)) for p in RULE_FILES)],
        ["test", "rules", "tests/alerts_test.yml"],
    ):
        run = subprocess.run(
            [promtool, *args], cwd=PROMETHEUS_DIR, capture_output=True, text=True, timeout=60
        )
        assert run.returncode == 0, f"promtool {' '.join(args)}:\n{run.stdout}\n{run.stderr}"


def test_the_alerts_the_pipeline_needs_are_there() -> None:
    alerts = {rule["alert"]: rule for rule in all_rules() if "alert" in rule}
    expected = {
        "PdWorkerDown": "up",
        "PdConsumerLagGrowing": "pd_consumer_lag",
        "PdDeadLetters": 'outcome="dead_lettered"',
        "PdIngestUnavailable": "pd_ingest_events",
        "PdEventToActionSlow": "pd_event_to_action_seconds",
        "PdInputGaps": "pd_input_gap_offsets_total",
    }
    recorded = {rule["record"]: rule["expr"] for rule in all_rules() if "record" in rule}
    for alert, needle in expected.items():
        expr = alerts[alert]["expr"]
        expanded = expr + " ".join(e for name, e in recorded.items() if name in expr)
        assert needle in expanded, f"{alert} is not about {needle}: {expr}"


def up_selector(alert: str) -> dict[str, str]:
    """The label matchers (`label="value"`, all of them) of an `up{...} == 0` alert."""
    expr = next(rule["expr"] for rule in all_rules() if rule.get("alert") == alert)
    match = re.fullmatch(r"up\{([^}]*)\} == 0", expr.strip())
    assert match, f"{alert}: {expr}"
    matchers = [m.strip() for m in match.group(1).split(",") if m.strip()]
    pairs = [re.fullmatch(r'(\w+)="([^"]*)"', m) for m in matchers]
    assert all(pairs), f"{alert} selects by more than equality: {expr}"
    return {p.group(1): p.group(2) for p in pairs if p}


def test_every_scraped_process_is_covered_by_a_down_alert() -> None:
    """Each API (the console included) pages through PdApiDown, each worker through PdWorkerDown,
    by the `component` label the scrape config gives (compose here; Kubernetes' ServiceMonitors
    in tests/unit/test_k8s_manifests.py): a job without it would go down unnoticed."""
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    alert_of = {"api": "PdApiDown", "worker": "PdWorkerDown", "infra": "PdExporterDown"}
    selectors = {alert: up_selector(alert) for alert in alert_of.values()}
    covered = set()
    for job in config["scrape_configs"]:
        if job["job_name"] == "prometheus":
            continue
        (labels,) = [{"job": job["job_name"], **static["labels"]} for static in job["static_configs"]]
        for alert, selector in selectors.items():
            matches = selector.items() <= labels.items()
            assert matches == (alert == alert_of[labels["component"]]), f"{job['job_name']} and {alert}"
        covered.add(job["job_name"])
    assert {"ingest", "console", "campaign-api", "campaign-worker", "wecom-sender"} <= covered


# --- metric names: used vs exported ---------------------------------------------------------

_KEYWORDS = {
    "and", "or", "unless", "bool", "by", "without", "on", "ignoring", "group_left", "group_right",
    "offset", "inf", "nan", "atan2",
}  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression (or a Grafana query with $variables) reads."""
    text = re.sub(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges, subqueries
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\boffset\s+-?\w+", " ", text)
    names = re.findall(r"(?<![\w:.$])([A-Za-z_:][\w:]*)(?![\w:]*\s*\()", text)
    return {n for n in names if n.lower() not in _KEYWORDS}


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('sum by (source, le) (rate(pd_a_total{x="y", z=~"$v"}[$__rate_interval]))', {"pd_a_total"}),
        ("histogram_quantile(0.99, sum by (le) (rate(h_bucket[5m]))) > 1e-3", {"h_bucket"}),
        ("a:b:c > 1000 and deriv(a:b:c[10m]) > 0", {"a:b:c"}),
        ("x unless x offset 10m or on () sum(y) > 0", {"x", "y"}),
        ('up{job=~".+-worker"} == 0', {"up"}),
    ],
)
def test_metric_names_are_read_off_expressions(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


_SUFFIXES = {
    "Counter": ("_total", "_created"),
    "Gauge": ("",),
    "Histogram": ("_bucket", "_sum", "_count", "_created"),
    "Summary": ("", "_sum", "_count", "_created"),
    "Info": ("_info",),
    "Enum": ("",),
}


def exposed(kind: str, name: str) -> set[str]:
    """The sample names prometheus_client exposes for a metric of `kind` named `name`."""
    if kind == "Counter":
        name = name.removesuffix("_total")
    return {name + suffix for suffix in _SUFFIXES[kind]}


@cache
def exported_by_source() -> tuple[frozenset[str], tuple[str, ...]]:
    """Every metric defined in services/ and shared/ (prometheus_client constructors with the
    name's literal, or an f-string whose fields are literal keyword arguments at the call sites of
    the function defining it), as exposed; and what could not be resolved."""
    trees = [
        ast.parse(p.read_text()) for d in ("services", "shared") for p in sorted((ROOT / d).rglob("*.py"))
    ]
    literal_kwargs: dict[tuple[str, str], set[str]] = defaultdict(set)
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                callee = getattr(node.func, "id", getattr(node.func, "attr", None))
                for kw in node.keywords:
                    if kw.arg and isinstance(kw.value, ast.Constant) and isinstance(kw.value.value, str):
                        literal_kwargs[(callee, kw.arg)].add(kw.value.value)

    names: set[str] = set()
    unresolved: list[str] = []
    for tree in trees:
        kinds = {
            alias.asname or alias.name: alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module == "prometheus_client"
            for alias in node.names
            if alias.name in _SUFFIXES
        }
        scope_of: dict[ast.AST, str] = {}  # each call -> the innermost function around it
        for function in ast.walk(tree):
            if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                scope_of |= {node: function.name for node in ast.walk(function)}
        for call in ast.walk(tree):
            if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name)):
                continue
            kind = kinds.get(call.func.id)
            if kind is None:
                continue
            scope = scope_of.get(call, "")
            first = call.args[0] if call.args else next(k.value for k in call.keywords if k.arg == "name")
            if isinstance(first, ast.Constant):
                names |= exposed(kind, first.value)
                continue
            candidates = [""]
            for part in first.values if isinstance(first, ast.JoinedStr) else [first]:
                if isinstance(part, ast.Constant):
                    candidates = [c + part.value for c in candidates]
                elif isinstance(part, ast.FormattedValue) and isinstance(part.value, ast.Name):
                    values = literal_kwargs.get((scope, part.value.id), set())
                    candidates = [c + v for c in candidates for v in sorted(values)]
                else:
                    candidates = []
            if not candidates:
                unresolved.append(ast.unparse(first))
            for candidate in candidates:
                names |= exposed(kind, candidate)
    return frozenset(names), tuple(unresolved)


def registered_by_the_processes() -> set[str]:
    """What the real apps and workers register, for a cross-check of the source scan."""
    from services.campaign.agents import ActionMetrics
    from services.campaign.api import create_app as campaign_api
    from services.campaign.settings import CampaignSettings
    from services.console.app import create_app as console_app
    from services.console.settings import ConsoleSettings
    from services.ingest.api import create_app as ingest_api
    from services.ingest.settings import IngestSettings
    from services.scoring.api import create_app as scoring_api
    from services.scoring.settings import ScoringSettings
    from services.tagging.api import create_app as tagging_api
    from services.tagging.settings import TaggingSettings
    from shared.worker_metrics import WorkerMetrics

    registry = CollectorRegistry()
    ingest_api(IngestSettings(), registry)
    scoring_api(ScoringSettings(), registry)
    tagging_api(TaggingSettings(), registry)
    campaign_api(CampaignSettings(), registry)
    console_app(ConsoleSettings(), registry)
    WorkerMetrics("test", registry)
    ActionMetrics(registry)
    kinds = {"counter": "Counter", "gauge": "Gauge", "histogram": "Histogram", "summary": "Summary"}
    return {n for family in registry.collect() for n in exposed(kinds[family.type], family.name)}


def recorded_names() -> set[str]:
    return {rule["record"] for rule in all_rules() if "record" in rule}


def load_dashboards() -> dict[str, dict[str, Any]]:
    return {path.name: json.loads(path.read_text()) for path in DASHBOARD_FILES}


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def dashboard_queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, PromQL) for every panel target and template variable."""
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            yield f"{dashboard['uid']}/{panel['title']}", target["expr"]
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            query = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
            match = re.fullmatch(r"label_values\((.+),\s*\w+\)", query)
            yield f"{dashboard['uid']}/${variable['name']}", match.group(1) if match else query


def test_the_source_scan_finds_everything_the_processes_register() -> None:
    scanned, unresolved = exported_by_source()
    assert unresolved == ()
    assert registered_by_the_processes() <= scanned
    assert "pd_lead_matrix_customers" in scanned


def test_every_metric_in_rules_and_dashboards_is_exported() -> None:
    scanned, _ = exported_by_source()
    known = scanned | recorded_names() | SCRAPE_SERIES | EXPORTER_SERIES
    used = [(f"rule {r.get('record') or r['alert']}", r["expr"]) for r in all_rules()]
    used += [q for d in load_dashboards().values() for q in dashboard_queries(d)]
    unknown = sorted(
        {(where, name) for where, expr in used for name in metric_names(expr) if name not in known}
    )
    assert unknown == [], "metrics no code exports (or typos)"
    assert len(used) > 20


def test_the_contract_metrics_are_the_ones_the_contract_names() -> None:
    text = DESIGN.read_text()
    section = text[text.index("## Metrics") :]
    section = section[: section.index("\n## ", 1)]
    named = set(re.findall(r"`(pd_\w+?)(?:\{[^`]*\})?`", section))
    assert named == CONTRACT_METRICS


def test_every_contract_metric_is_on_a_dashboard() -> None:
    used = {
        name
        for d in load_dashboards().values()
        for _, expr in dashboard_queries(d)
        for name in metric_names(expr)
    }
    for metric in sorted(CONTRACT_METRICS):
        assert {metric, f"{metric}_bucket", f"{metric}_count"} & used, f"no panel shows {metric}"


# --- the dashboards -------------------------------------------------------------------------


def test_dashboards_are_valid_and_use_the_provisioned_datasource() -> None:
    datasource = yaml.safe_load(DATASOURCES.read_text())["datasources"][0]
    assert datasource["type"] == "prometheus"
    assert datasource["url"] == "http://prometheus:9090"
    dashboards = load_dashboards()
    assert len(dashboards) >= 1
    uids = [d["uid"] for d in dashboards.values()]
    assert len(set(uids)) == len(uids)
    for name, dashboard in dashboards.items():
        assert dashboard["title"] and dashboard["schemaVersion"] >= 36, name
        ids = [panel["id"] for panel in panels(dashboard)]
        assert len(ids) == len(set(ids)), f"{name}: panel ids repeat"
        for panel in panels(dashboard):
            if panel["type"] == "row":
                continue
            where = f"{name}/{panel['title']}"
            assert panel["datasource"] == {"type": "prometheus", "uid": datasource["uid"]}, where
            assert panel["targets"], f"{where}: no query"
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == datasource["uid"], where
                assert target["expr"].strip(), where
            grid = panel["gridPos"]
            assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, where


def test_the_lead_matrix_is_a_heatmap() -> None:
    heatmaps = [
        panel
        for d in load_dashboards().values()
        for panel in panels(d)
        if panel["type"] == "heatmap"
        and any("pd_lead_matrix_customers" in t["expr"] for t in panel["targets"])
    ]
    assert heatmaps


def test_ingest_counts_a_rejected_event_whatever_its_source_and_type_hold() -> None:
    from prometheus_client import CollectorRegistry

    from services.ingest.metrics import IngestMetrics

    registry = CollectorRegistry()
    IngestMetrics(registry).count_all([({"a": 1}, ["x"], "invalid"), ("wecom", "custom.x", "accepted")])
    counted = registry.get_sample_value
    assert (
        counted("pd_ingest_events_total", {"source": "unknown", "type": "unknown", "outcome": "invalid"}) == 1
    )
    assert (
        counted("pd_ingest_events_total", {"source": "wecom", "type": "custom", "outcome": "accepted"}) == 1
    )


def test_api_latency_is_labelled_by_the_route_a_caller_uses() -> None:
    # Routes of routers included into /v1 (campaign's, among others) and routes of /v1 itself:
    # each labelled by its whole template; refused before Redis, for want of the ops token.
    from fastapi.testclient import TestClient

    from services.campaign.api import create_app as campaign_api
    from services.campaign.settings import CampaignSettings

    registry = CollectorRegistry()
    client = TestClient(campaign_api(CampaignSettings(), registry))
    for path in ("/v1/campaigns", "/v1/campaigns/c-1", "/v1/no-such-route"):
        client.get(path)
    routes = {
        sample.labels["route"]
        for family in registry.collect()
        if family.name == "pd_campaign_api_request_seconds"
        for sample in family.samples
        if sample.name.endswith("_count")
    }
    assert {"/v1/campaigns", "/v1/campaigns/{campaign_id}"} <= routes
    assert not any(route.startswith("/campaigns") for route in routes)

"""docker-compose.yml: valid against the compose spec, and consistent with what the code reads.

The compose-spec JSON schema is the one check-jsonschema vendors (offline). The project checks
read the real settings classes: a port, an env var or a scrape target that drifts from them fails.
"""

from __future__ import annotations

import copy
import importlib.resources
import json
import re
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from pydantic_settings import BaseSettings

from services.campaign.settings import CampaignSettings
from services.console.settings import ConsoleSettings
from services.ingest.settings import IngestSettings
from services.scoring.settings import ScoringSettings
from services.tagging.settings import TaggingSettings
from services.wecom_sender.settings import WeComSenderSettings
from shared.settings import ServiceSettings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
PROMETHEUS = ROOT / "deploy" / "prometheus" / "prometheus.yml"

# What `${VAR:?...}` stands for when the test resolves the file: values the settings accept.
REQUIRED_VARIABLES = {
    "INGEST_API_KEYS": '{"test-key": ["*"]}',
    "PHONE_HASH_SALT": "test-salt-long-enough-for-anyone",
    "CONSOLE_SESSION_SECRET": "test-session-secret-of-32-characters-at-least",
    "OPS_TOKENS": "ops.team:admin:test-ops-token-long-enough",
    "WECOM_CORP_ID": "wwtest0000000001",
    "WECOM_CORP_SECRET": "test-wecom-app-secret-long-enough",
    "REDIS_PASSWORD": "test-redis-password-long-enough",
    "GRAFANA_ADMIN_PASSWORD": "test-grafana-password",
}

# Each long-running process of our image: its settings class and the field holding the port its
# /readyz and /metrics answer on.
ENTRYPOINTS: dict[str, tuple[type[BaseSettings], str]] = {
    "pd-ingest": (IngestSettings, "ingest_port"),
    "pd-scoring-api": (ScoringSettings, "scoring_port"),
    "pd-scoring-worker": (ScoringSettings, "scoring_metrics_port"),
    "pd-tagging-api": (TaggingSettings, "tagging_port"),
    "pd-tagging-worker": (TaggingSettings, "tagging_metrics_port"),
    "pd-campaign-api": (CampaignSettings, "campaign_port"),
    "pd-campaign-worker": (CampaignSettings, "campaign_metrics_port"),
    "pd-console": (ConsoleSettings, "console_port"),
    "pd-wecom-sender": (WeComSenderSettings, "wecom_sender_metrics_port"),
}
# The one-shot topics job builds these (see its command).
TOPICS_JOB_SETTINGS: tuple[type[BaseSettings], ...] = (
    ServiceSettings,
    ScoringSettings,
    TaggingSettings,
    CampaignSettings,
)


def load_compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def compose_schema() -> dict[str, Any]:
    vendor = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    return json.loads((vendor / "compose-spec.json").read_text())


def schema_errors(document: dict[str, Any]) -> list[str]:
    schema = compose_schema()
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    errors = validator_class(schema).iter_errors(document)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors]


_VARIABLE = re.compile(r"\$\{(\w+)(?:(:?[-?])([^}]*))?\}")


def interpolate(value: object) -> str:
    """Compose's `${VAR}`, `${VAR:-default}` and `${VAR:?error}`, as if no variable were set."""

    def substitute(match: re.Match[str]) -> str:
        name, op, arg = match.groups()
        if op in (":?", "?"):
            return REQUIRED_VARIABLES[name]
        if op in (":-", "-"):
            return arg
        return ""

    return _VARIABLE.sub(substitute, str(value)).replace("$$", "$")


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    assert isinstance(env, dict), "environment as a mapping, please"
    return {key: interpolate(value) for key, value in env.items()}


def our_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services built from this repository's image."""
    return {name: s for name, s in compose["services"].items() if "build" in s}


def long_running(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in our_services(compose).items() if s.get("restart") != "no"}


def settings_of(
    cls: type[BaseSettings], service: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> BaseSettings:
    """The settings the service's process would build from its compose environment, and nothing else."""
    for field in cls.model_fields:
        monkeypatch.delenv(field.upper(), raising=False)
    for key, value in environment(service).items():
        monkeypatch.setenv(key, value)
    return cls()


def scrape_targets() -> dict[str, set[str]]:
    config = yaml.safe_load(PROMETHEUS.read_text())
    return {
        job["job_name"]: {t for static in job.get("static_configs", []) for t in static["targets"]}
        for job in config["scrape_configs"]
    }


def test_compose_file_matches_the_compose_spec() -> None:
    assert schema_errors(load_compose()) == []


def test_the_schema_check_rejects_what_compose_rejects() -> None:
    """The check is live: the vendored schema finds a misspelt key and an unknown condition."""
    broken = copy.deepcopy(load_compose())
    broken["services"]["ingest"]["helthcheck"] = broken["services"]["ingest"].pop("healthcheck")
    broken["services"]["scoring-api"]["depends_on"]["redis"]["condition"] = "service_ready"
    errors = schema_errors(broken)
    assert any("helthcheck" in e for e in errors), errors
    assert any("service_ready" in e for e in errors), errors


def test_every_long_running_process_is_a_known_entrypoint() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    for name, service in long_running(load_compose()).items():
        entrypoint = service["command"][0]
        assert entrypoint in ENTRYPOINTS, f"{name}: {entrypoint} has no settings/port entry in this test"
        assert entrypoint in scripts, f"{name}: {entrypoint} is not a console script of the package"


@pytest.mark.parametrize("name", sorted(long_running(load_compose())))
def test_healthcheck_ports_and_scrape_target_use_the_port_the_settings_read(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = load_compose()["services"][name]
    cls, port_field = ENTRYPOINTS[service["command"][0]]
    port = getattr(settings_of(cls, service, monkeypatch), port_field)

    assert port_field.upper() in service["environment"], f"{name}: set {port_field.upper()} explicitly"
    health = " ".join(service["healthcheck"]["test"])
    assert re.search(rf"localhost:{port}/readyz\b", health), (
        f"{name}: healthcheck {health!r} is not on {port}"
    )
    published = [interpolate(p) for p in service["ports"]]
    assert f"127.0.0.1:{port}:{port}" in published, f"{name}: port {port} not published on localhost"
    assert f"{name}:{port}" in scrape_targets().get(name, set()), (
        f"Prometheus job {name} misses {name}:{port}"
    )


@pytest.mark.parametrize("name", sorted(our_services(load_compose())))
def test_every_env_var_is_a_setting_the_process_reads(name: str) -> None:
    service = load_compose()["services"][name]
    if service.get("restart") == "no":
        classes = TOPICS_JOB_SETTINGS
    else:
        classes = (ENTRYPOINTS[service["command"][0]][0],)
    known = {field.upper() for cls in classes for field in cls.model_fields}
    unread = sorted(set(service.get("environment", {})) - known)
    assert unread == [], f"{name} sets variables no settings class reads (a typo is silently ignored)"


def test_the_console_calls_the_four_apis_where_compose_runs_them(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each *_URL names the API's compose service on the port that API's settings read; the
    console waits for them, and gets neither the broker, Redis nor an ops token of its own."""
    services = load_compose()["services"]
    console = services["console"]
    settings = settings_of(ConsoleSettings, console, monkeypatch)
    apis = {
        "ingest_url": ("ingest", IngestSettings, "ingest_port"),
        "scoring_url": ("scoring-api", ScoringSettings, "scoring_port"),
        "tagging_url": ("tagging-api", TaggingSettings, "tagging_port"),
        "campaign_url": ("campaign-api", CampaignSettings, "campaign_port"),
    }
    for field, (name, cls, port_field) in apis.items():
        assert field.upper() in console["environment"], f"console: set {field.upper()} explicitly"
        port = getattr(settings_of(cls, services[name], monkeypatch), port_field)
        assert getattr(settings, field) == f"http://{name}:{port}", field
        assert console["depends_on"][name] == {"condition": "service_healthy"}, name
    assert not {"KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL", "OPS_TOKENS"} & set(console["environment"])
    # Required like the other secrets (compose refuses to start without it), and long enough.
    assert re.fullmatch(
        r"\$\{CONSOLE_SESSION_SECRET:\?.+\}", console["environment"]["CONSOLE_SESSION_SECRET"]
    )
    assert settings.console_session_secret == REQUIRED_VARIABLES["CONSOLE_SESSION_SECRET"]


def test_every_process_agrees_on_the_partition_count(monkeypatch: pytest.MonkeyPatch) -> None:
    """The topics job creates topics with its TOPIC_PARTITIONS; the workers co-partition with theirs."""
    counts = {}
    for name, service in our_services(load_compose()).items():
        counts[name] = settings_of(ServiceSettings, service, monkeypatch).topic_partitions
    assert len(set(counts.values())) == 1, counts


def test_every_depends_on_waits_for_a_condition_the_dependency_can_meet() -> None:
    services = load_compose()["services"]
    for name, service in services.items():
        depends_on = service.get("depends_on", {})
        assert isinstance(depends_on, dict), f"{name}: depends_on as a list has no condition"
        for dependency, spec in depends_on.items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            condition = spec.get("condition")
            assert condition in {"service_healthy", "service_completed_successfully"}, (name, dependency)
            if condition == "service_healthy":
                assert "healthcheck" in services[dependency], f"{dependency} has no healthcheck"
            else:
                assert services[dependency].get("restart") == "no", f"{dependency} is not a one-shot job"


def test_images_are_pinned_and_mounted_paths_exist() -> None:
    for name, service in load_compose()["services"].items():
        if "image" in service:
            image = service["image"]
            assert re.fullmatch(r"[\w./-]+:[\w.-]+", image), f"{name}: pin a tag for {image}"
            assert not image.endswith(":latest"), f"{name}: {image}"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"


def test_prometheus_scrapes_exactly_our_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    compose = load_compose()
    expected = {}
    for name, service in long_running(compose).items():
        cls, port_field = ENTRYPOINTS[service["command"][0]]
        expected[name] = {f"{name}:{getattr(settings_of(cls, service, monkeypatch), port_field)}"}
    targets = scrape_targets()
    assert targets.pop("prometheus") == {"localhost:9090"}
    # Redis's and Kafka's exporters, on the ports their images listen on.
    assert (targets.pop("redis"), targets.pop("kafka")) == ({"redis-exporter:9121"}, {"kafka-exporter:9308"})
    assert {"redis-exporter", "kafka-exporter"} <= set(compose["services"])
    assert targets == expected
    assert "127.0.0.1:9090:9090" in [interpolate(p) for p in compose["services"]["prometheus"]["ports"]]


def test_grafana_has_a_password_from_the_environment_and_our_provisioning() -> None:
    grafana = load_compose()["services"]["grafana"]
    assert re.fullmatch(
        r"\$\{GRAFANA_ADMIN_PASSWORD:\?.+\}", grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD"]
    )
    mounts = dict(v.split(":")[:2] for v in grafana["volumes"])
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    provider = yaml.safe_load((ROOT / "deploy/grafana/provisioning/dashboards/dashboards.yml").read_text())
    assert mounts["./deploy/grafana/dashboards"] == provider["providers"][0]["options"]["path"]


def test_every_service_restarts_has_limits_and_publishes_on_localhost_only() -> None:
    """A crashed process comes back; none can starve the host; nothing listens on every interface
    unless PD_BIND_ADDRESS says so; no secret has a default anyone could know."""
    for name, service in load_compose()["services"].items():
        expected = "no" if name == "topics" else "unless-stopped"
        assert service.get("restart") == expected, name
        limits = service["deploy"]["resources"]["limits"]
        assert {"cpus", "memory"} <= set(limits), name
        for port in service.get("ports", []):
            assert port.startswith("${PD_BIND_ADDRESS:-127.0.0.1}:"), f"{name}: {port}"
    text = COMPOSE.read_text()
    assert "change-me" not in text
    for secret in REQUIRED_VARIABLES:
        assert f"${{{secret}:?" in text, f"{secret} is not required"
        assert not re.search(rf"\$\{{{secret}:-", text), f"{secret} has a default"


def test_redis_requires_its_password_and_every_process_gives_it() -> None:
    services = load_compose()["services"]
    assert "--requirepass" in services["redis"]["command"]
    for name, service in our_services(load_compose()).items():
        url = environment(service).get("REDIS_URL")
        if url is not None:
            assert url == f"redis://:{REQUIRED_VARIABLES['REDIS_PASSWORD']}@redis:6379/0", name


def test_topics_job_creates_every_topic_the_workers_need(monkeypatch: pytest.MonkeyPatch) -> None:
    """The job runs `pd-topics`; what that creates, in the job's environment, is what every
    worker reads and writes."""
    from services.campaign.topics import worker_owned_topics as campaign_owned
    from services.scoring.topics import worker_owned_topics as scoring_owned
    from services.tagging.topics import worker_owned_topics as tagging_owned
    from services.topics import all_topics
    from shared.topics import contract_topics

    compose = load_compose()
    job = compose["services"]["topics"]
    assert job["command"] == ["pd-topics"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["pd-topics"] == "services.topics:main"
    settings = settings_of(ServiceSettings, job, monkeypatch)
    created = all_topics()

    by_name = {spec.name: spec for spec in created}
    assert len(by_name) == len(created), "a topic is listed twice"
    needed = contract_topics(settings.topic_partitions)
    for name, cls, owned in (
        ("scoring-worker", ScoringSettings, scoring_owned),
        ("tagging-worker", TaggingSettings, tagging_owned),
        ("campaign-worker", CampaignSettings, campaign_owned),
    ):
        needed += owned(settings_of(cls, compose["services"][name], monkeypatch))
    assert sorted(created, key=lambda s: s.name) == sorted(needed, key=lambda s: s.name)

    for changelog in (
        "pd-scoring-customers-changelog",
        "pd-tagging-profiles-changelog",
        "pd-campaign-journeys-changelog",
    ):
        assert ("cleanup.policy", "compact") in by_name[changelog].config, changelog
        assert by_name[changelog].partitions == settings.topic_partitions
    week_ms = str(7 * 24 * 3600 * 1000)
    assert ("retention.ms", week_ms) in by_name["touchpoint.events.v1"].config


SASL = ROOT / "docker-compose.sasl.yml"


def merged(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Compose's merge of an override file: mappings merge, anything else is replaced."""
    result = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merged(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def test_the_sasl_override_puts_every_kafka_client_behind_a_login(monkeypatch: pytest.MonkeyPatch) -> None:
    """`-f docker-compose.sasl.yml`: the broker takes SASL only, and every process that reaches
    Kafka logs in — what the settings build from the merged environment, as the processes would.
    (No Docker engine here: the stack itself is not started against it.)"""
    monkeypatch.setitem(REQUIRED_VARIABLES, "KAFKA_SASL_PASSWORD", "test-sasl-password-long-enough")
    override = yaml.safe_load(SASL.read_text())
    compose = merged(load_compose(), {k: v for k, v in override.items() if not k.startswith("x-")})
    assert schema_errors(compose) == []
    kafka = environment(compose["services"]["kafka"])
    assert (
        kafka["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"] == "CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT"
    )
    monkeypatch.setitem(REQUIRED_VARIABLES, "KAFKA_SASL_PASSWORD", "test-sasl-password-long-enough")
    clients = [
        name
        for name, service in our_services(compose).items()
        if "KAFKA_BOOTSTRAP_SERVERS" in environment(service)
    ]
    assert {"topics", "ingest", "scoring-worker", "tagging-worker", "campaign-worker", "wecom-sender"} <= set(
        clients
    )
    for name in clients:
        settings = settings_of(ServiceSettings, compose["services"][name], monkeypatch)
        security = settings.kafka_security
        assert (security.protocol, security.sasl_mechanism, security.username) == (
            "SASL_PLAINTEXT",
            "PLAIN",
            "pd",
        ), name
        assert security.password == "test-sasl-password-long-enough", name

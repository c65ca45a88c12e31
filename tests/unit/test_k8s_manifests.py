"""Offline checks of the Kubernetes manifests in deploy/k8s (no cluster, no network).

Every document of the base and of the production overlay, as kustomize would render them, is
validated against the Kubernetes JSON schemas bundled in `kubernetes-validate` (strict: unknown
fields fail). The overlay is rendered by `render()` below — a small kustomize for the features
these kustomizations use — and, where a `kubectl` binary is on the machine, compared with
`kubectl kustomize`. Then project checks: ports, probes and env vars against the settings
classes the code reads, worker replicas against partitions, an HPA per API, a PDB per Deployment.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate.utils as kv_utils
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
from shared.stream_worker import WorkerSettings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
BASE = K8S / "base"
PRODUCTION = K8S / "overlays" / "production"
KUBERNETES_VERSION = "1.33"  # schemas to validate against (oldest we intend to support)
IMAGE = "private-domain-ops"
UID = 10001

Doc = dict[str, Any]


# What each process is: its console script, the settings class it builds, the field of its port,
# and its kind: an API (HPA), a stream worker (bounded replicas, tables), or a consumer that
# delivers (bounded replicas, no tables).
PROCESSES: dict[str, tuple[str, type[BaseSettings], str, str]] = {
    "ingest": ("pd-ingest", IngestSettings, "ingest_port", "api"),
    "scoring-api": ("pd-scoring-api", ScoringSettings, "scoring_port", "api"),
    "tagging-api": ("pd-tagging-api", TaggingSettings, "tagging_port", "api"),
    "campaign-api": ("pd-campaign-api", CampaignSettings, "campaign_port", "api"),
    "console": ("pd-console", ConsoleSettings, "console_port", "api"),
    "scoring-worker": ("pd-scoring-worker", ScoringSettings, "scoring_metrics_port", "worker"),
    "tagging-worker": ("pd-tagging-worker", TaggingSettings, "tagging_metrics_port", "worker"),
    "campaign-worker": ("pd-campaign-worker", CampaignSettings, "campaign_metrics_port", "worker"),
    "wecom-sender": ("pd-wecom-sender", WeComSenderSettings, "wecom_sender_metrics_port", "sender"),
}
APIS = sorted(name for name, (_, _, _, kind) in PROCESSES.items() if kind == "api")
WORKERS = sorted(name for name, (_, _, _, kind) in PROCESSES.items() if kind == "worker")
# Every member of a consumer group: replicas bounded by partitions.
CONSUMERS = sorted(name for name, (_, _, _, kind) in PROCESSES.items() if kind != "api")
SETTINGS_CLASSES: tuple[type[BaseSettings], ...] = (
    ServiceSettings,
    WorkerSettings,
    IngestSettings,
    ScoringSettings,
    TaggingSettings,
    CampaignSettings,
    ConsoleSettings,
    WeComSenderSettings,
)
# The Secret's keys, and which process reads which: the console signs its users in with their own
# ops tokens, so it has its session secret only.
SECRET_KEYS = {
    "PHONE_HASH_SALT",
    "INGEST_API_KEYS",
    "OPS_TOKENS",
    "CONSOLE_SESSION_SECRET",
    "WECOM_CALLBACKS",
    "WECOM_CORP_ID",
    "WECOM_CORP_SECRET",
}


# ---------------------------------------------------------------------------------------------
# A small kustomize: resources, namespace, images, replicas, labels, strategic-merge patches.


def load_docs(path: Path) -> list[Doc]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def kustomization(directory: Path) -> Doc:
    return yaml.safe_load((directory / "kustomization.yaml").read_text())


def kustomization_dirs() -> list[Path]:
    return sorted(path.parent for path in K8S.rglob("kustomization.yaml"))


def merge(base: Any, patch: Any) -> Any:
    """Strategic merge as far as these patches need it: maps merge, lists of named items merge
    by name, anything else is replaced."""
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = dict(base)
        for key, value in patch.items():
            merged[key] = merge(base[key], value) if key in base else copy.deepcopy(value)
        return merged
    if (
        isinstance(base, list)
        and isinstance(patch, list)
        and all(isinstance(item, dict) and "name" in item for item in base + patch)
    ):
        merged_list = [copy.deepcopy(item) for item in base]
        for item in patch:
            index = next((i for i, old in enumerate(merged_list) if old["name"] == item["name"]), None)
            if index is None:
                merged_list.append(copy.deepcopy(item))
            else:
                merged_list[index] = merge(merged_list[index], item)
        return merged_list
    return copy.deepcopy(patch)


def containers(doc: Doc) -> list[Doc]:
    spec = doc["spec"]["template"]["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


def render(directory: Path) -> list[Doc]:
    config = kustomization(directory)
    docs: list[Doc] = []
    for entry in config.get("resources", []):
        path = directory / entry
        docs += render(path) if path.is_dir() else load_docs(path)
    for entry in config.get("patches", []):
        for patch in load_docs(directory / entry["path"]):
            ident = (patch["kind"], patch["metadata"]["name"])
            index = next(i for i, doc in enumerate(docs) if (doc["kind"], doc["metadata"]["name"]) == ident)
            if patch.get("$patch") == "delete":
                del docs[index]
            else:
                docs[index] = merge(docs[index], patch)
    for counted in config.get("replicas", []):
        by_kind(docs, "Deployment")[counted["name"]]["spec"]["replicas"] = counted["count"]
    for image in config.get("images", []):
        for doc in docs:
            if doc["kind"] not in ("Deployment", "Job"):
                continue
            for container in containers(doc):
                name, _, tag = container["image"].partition(":")
                if name == image["name"]:
                    container["image"] = f"{image.get('newName', name)}:{image.get('newTag', tag)}"
    for label_set in config.get("labels", []):
        assert label_set.get("includeSelectors") is False, "render() only adds labels to metadata"
        for doc in docs:
            doc["metadata"].setdefault("labels", {}).update(label_set["pairs"])
    if "namespace" in config:
        for doc in docs:
            if doc["kind"] != "Namespace":
                doc["metadata"]["namespace"] = config["namespace"]
    return docs


@cache
def rendered(directory: Path) -> tuple[Doc, ...]:
    return tuple(render(directory))


def by_kind(docs: tuple[Doc, ...] | list[Doc], kind: str) -> dict[str, Doc]:
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return selector.items() <= labels.items()


def the_container(deployment: Doc) -> Doc:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def partitions(docs: tuple[Doc, ...]) -> int:
    return int(by_kind(docs, "ConfigMap")["pd-config"]["data"]["TOPIC_PARTITIONS"])


def settings_default(cls: type[BaseSettings], field: str) -> Any:
    # The field's default, whatever the environment of the test run says.
    return cls.model_fields[field].default


RENDERS = pytest.mark.parametrize("directory", [BASE, PRODUCTION], ids=["base", "production"])


# ---------------------------------------------------------------------------------------------
# Files and schemas


def test_every_kustomization_names_files_that_exist() -> None:
    dirs = kustomization_dirs()
    assert BASE in dirs and PRODUCTION in dirs
    for directory in dirs:
        config = kustomization(directory)
        assert config["kind"] == "Kustomization"
        entries = [*config.get("resources", []), *(patch["path"] for patch in config.get("patches", []))]
        assert entries, f"{directory}: names no resources"
        for entry in entries:
            path = (directory / entry).resolve()
            assert path.exists(), f"{directory / 'kustomization.yaml'} names {entry}, which does not exist"
            if path.is_dir():
                assert (path / "kustomization.yaml").exists(), f"{entry} is a directory without kustomization"


def test_every_manifest_file_is_listed_by_its_kustomization() -> None:
    for directory in kustomization_dirs():
        config = kustomization(directory)
        listed = {*config.get("resources", []), *(patch["path"] for patch in config.get("patches", []))}
        on_disk = {path.name for path in directory.glob("*.yaml")} - {"kustomization.yaml"}
        assert on_disk <= listed, f"{directory}: {sorted(on_disk - listed)} are not in kustomization.yaml"


@cache
def schema_contents(filename: str, desired_version: str) -> Any:
    # kubernetes-validate reads and parses the 1.4 MB definitions file on every call; once is enough.
    return _uncached_schema_contents(filename, desired_version)


_uncached_schema_contents = kv_utils.schema_contents


@RENDERS
def test_every_document_validates_against_the_kubernetes_schemas(
    directory: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kv_utils, "schema_contents", schema_contents)
    docs = rendered(directory)
    assert len(docs) >= 25
    errors = []
    for doc in docs:
        try:
            kv_utils.validate(doc, KUBERNETES_VERSION, strict=True)
        except kv_utils.ValidationError as error:
            path = "/".join(str(part) for part in error.path)
            errors.append(f"{doc['kind']}/{doc['metadata']['name']}: {path}: {error.message}")
    assert not errors, "\n".join(errors)


def test_the_schema_validation_catches_a_broken_deployment(monkeypatch: pytest.MonkeyPatch) -> None:
    # The validator above is only worth something if it rejects what the API server would.
    monkeypatch.setattr(kv_utils, "schema_contents", schema_contents)
    deployment = copy.deepcopy(by_kind(rendered(BASE), "Deployment")["ingest"])
    the_container(deployment)["ports"][0]["containerPort"] = "8001"  # a string, not an integer
    with pytest.raises(kv_utils.ValidationError):
        kv_utils.validate(deployment, KUBERNETES_VERSION, strict=True)
    deployment = copy.deepcopy(by_kind(rendered(BASE), "Deployment")["ingest"])
    the_container(deployment)["readinesProbe"] = {}  # misspelt field: strict mode rejects it
    with pytest.raises(kv_utils.ValidationError):
        kv_utils.validate(deployment, KUBERNETES_VERSION, strict=True)


@RENDERS
def test_render_matches_kubectl_kustomize(directory: Path) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("no kubectl on this machine: render() is not cross-checked against kustomize")
    result = subprocess.run(
        [kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr
    theirs = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(result.stdout) if d}
    ours = {(d["kind"], d["metadata"]["name"]): d for d in rendered(directory)}
    assert sorted(ours) == sorted(theirs)
    for key, doc in ours.items():
        assert doc == theirs[key], f"{key} differs from kubectl kustomize"


# ---------------------------------------------------------------------------------------------
# Processes: commands, ports and probes as the code has them


def test_every_process_has_a_deployment_running_its_console_script() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    deployments = by_kind(rendered(BASE), "Deployment")
    assert sorted(deployments) == sorted(PROCESSES)
    for name, (script, _, _, _) in PROCESSES.items():
        assert script in scripts, f"{script} is not a console script in pyproject.toml"
        assert the_container(deployments[name])["command"] == [script]
    (job,) = by_kind(rendered(BASE), "Job").values()
    assert "pd-topics" in scripts
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == ["pd-topics"]


@RENDERS
def test_ports_and_probes_match_the_settings(directory: Path) -> None:
    docs = rendered(directory)
    deployments = by_kind(docs, "Deployment")
    services = by_kind(docs, "Service")
    for name, (_, settings_class, port_field, _) in PROCESSES.items():
        port = settings_default(settings_class, port_field)
        container = the_container(deployments[name])
        (declared,) = container["ports"]
        assert declared["containerPort"] == port, name
        env = {item["name"]: item.get("value") for item in container.get("env", [])}
        # The process listens where the port setting says: set it explicitly, to the same number.
        assert env[port_field.upper()] == str(port), name
        for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
            get = container[probe]["httpGet"]
            assert get["path"] == path, f"{name} {probe}"
            assert get["port"] in (port, declared["name"]), f"{name} {probe} probes another port"
        if "startupProbe" in container:
            assert container["startupProbe"]["httpGet"]["port"] in (port, declared["name"])
        service = services[name]
        (service_port,) = service["spec"]["ports"]
        assert service_port["port"] == port, name
        assert service_port["targetPort"] in (port, declared["name"]), name
        pod_labels = deployments[name]["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= pod_labels.items(), f"Service {name} selects no pod"
        annotations = service["metadata"].get("annotations", {})
        assert annotations.get("prometheus.io/scrape") == "true", name
        assert annotations.get("prometheus.io/port") == str(port), name
        assert annotations.get("prometheus.io/path") == "/metrics", name


def test_processes_listen_on_all_interfaces() -> None:
    # The settings default to 127.0.0.1, which no probe or Service could reach.
    data = by_kind(rendered(BASE), "ConfigMap")["pd-config"]["data"]
    assert settings_default(ServiceSettings, "http_host") != "0.0.0.0"
    assert data["HTTP_HOST"] == "0.0.0.0"


# ---------------------------------------------------------------------------------------------
# Settings: every env var set is one the code reads


def settings_env_names(cls: type[BaseSettings]) -> set[str]:
    assert cls.model_config.get("env_prefix", "") == "", f"{cls.__name__} has an env prefix"
    return {field.upper() for field in cls.model_fields}


@RENDERS
def test_every_env_var_set_is_read_by_a_settings_class(directory: Path) -> None:
    docs = rendered(directory)
    known = set().union(*(settings_env_names(cls) for cls in SETTINGS_CLASSES))
    config_keys = set(by_kind(docs, "ConfigMap")["pd-config"]["data"])
    assert config_keys <= known, f"ConfigMap sets what no settings class reads: {config_keys - known}"
    required = {"KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL", "TOPIC_PARTITIONS", "LOG_LEVEL", "HTTP_HOST"}
    assert required <= config_keys
    secrets = by_kind(docs, "Secret")
    if secrets:
        secret_keys = set(secrets["pd-secrets"]["stringData"])
        assert secret_keys == SECRET_KEYS
        assert secret_keys <= known
    # Each process's own env vars must be read by the settings class that process builds.
    for name, (_, settings_class, _, _) in PROCESSES.items():
        container = the_container(by_kind(docs, "Deployment")[name])
        own = {item["name"] for item in container.get("env", [])}
        unread = own - settings_env_names(settings_class)
        assert not unread, f"{name} sets {unread}, which {settings_class.__name__} does not read"
        for item in container.get("env", []):
            ref = item.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                assert ref == {"name": "pd-secrets", "key": item["name"]}
        refs = [source["configMapRef"]["name"] for source in container["envFrom"]]
        assert refs == ["pd-config"], name


def test_each_process_gets_only_the_secrets_it_reads() -> None:
    deployments = by_kind(rendered(BASE), "Deployment")

    def secret_keys(name: str) -> set[str]:
        env = the_container(deployments[name]).get("env", [])
        return {item["name"] for item in env if "secretKeyRef" in item.get("valueFrom", {})}

    assert secret_keys("ingest") == {"PHONE_HASH_SALT", "INGEST_API_KEYS", "OPS_TOKENS", "WECOM_CALLBACKS"}
    assert secret_keys("wecom-sender") == {"WECOM_CORP_ID", "WECOM_CORP_SECRET"}
    assert secret_keys("console") == {"CONSOLE_SESSION_SECRET"}
    for name in APIS:
        if name not in ("ingest", "console"):
            assert secret_keys(name) == {"OPS_TOKENS"}, name
    for name in WORKERS:
        assert secret_keys(name) == set(), name
    assert set().union(*(secret_keys(name) for name in PROCESSES)) == SECRET_KEYS


def test_the_base_secret_holds_only_marked_example_values(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = by_kind(rendered(BASE), "Secret")["pd-secrets"]
    assert "example" in " ".join(secret["metadata"]["annotations"]).lower()
    for key, value in secret["stringData"].items():
        assert "EXAMPLE" in value, f"{key} does not look like an example value"
        monkeypatch.setenv(key, value)
    # Values in the shape the settings parse: JSON keys, comma-separated tokens.
    settings = IngestSettings()
    assert settings.ingest_api_keys == json.loads(secret["stringData"]["INGEST_API_KEYS"])
    assert settings.ops_tokens == (secret["stringData"]["OPS_TOKENS"],)
    assert settings.phone_hash_salt == secret["stringData"]["PHONE_HASH_SALT"]
    # min_length: a placeholder too short for the console would stop it at start.
    assert ConsoleSettings().console_session_secret == secret["stringData"]["CONSOLE_SESSION_SECRET"]


def test_production_ships_no_example_secret() -> None:
    docs = rendered(PRODUCTION)
    assert "pd-secrets" not in by_kind(docs, "Secret")
    # The pods still read it: it is created out of band, as deploy/README.md says.
    assert "pd-secrets" in yaml.safe_dump(by_kind(docs, "Deployment")["ingest"])
    assert "create secret generic pd-secrets" in (ROOT / "deploy" / "README.md").read_text()


@RENDERS
def test_the_console_calls_the_apis_services_on_their_ports(directory: Path) -> None:
    docs = rendered(directory)
    services = by_kind(docs, "Service")
    env = {
        item["name"]: item.get("value")
        for item in the_container(by_kind(docs, "Deployment")["console"])["env"]
    }
    for variable, api in (
        ("INGEST_URL", "ingest"),
        ("SCORING_URL", "scoring-api"),
        ("TAGGING_URL", "tagging-api"),
        ("CAMPAIGN_URL", "campaign-api"),
    ):
        _, settings_class, port_field, _ = PROCESSES[api]
        port = settings_default(settings_class, port_field)
        (service_port,) = services[api]["spec"]["ports"]
        assert service_port["port"] == port, api
        assert env[variable] == f"http://{api}:{port}", variable


def test_production_sends_the_console_cookie_over_https_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """The console is behind TLS in production; the base keeps the settings' default (plain HTTP)."""
    assert settings_default(ConsoleSettings, "cookie_secure") is False
    for directory, expected in ((BASE, False), (PRODUCTION, True)):
        docs = rendered(directory)
        env = dict(by_kind(docs, "ConfigMap")["pd-config"]["data"])
        container = the_container(by_kind(docs, "Deployment")["console"])
        env |= {item["name"]: item["value"] for item in container["env"] if "value" in item}
        for field in ConsoleSettings.model_fields:
            monkeypatch.delenv(field.upper(), raising=False)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        assert ConsoleSettings().cookie_secure is expected, directory.name


# ---------------------------------------------------------------------------------------------
# Scaling: partitions bound the workers, HPAs scale the APIs, PDBs cover every Deployment


@RENDERS
def test_worker_replicas_are_bounded_by_partitions(directory: Path) -> None:
    docs = rendered(directory)
    limit = partitions(docs)
    deployments = by_kind(docs, "Deployment")
    for name in CONSUMERS:
        replicas = deployments[name]["spec"]["replicas"]
        assert 1 <= replicas <= limit, f"{name}: {replicas} replicas for {limit} partitions"
    for hpa in by_kind(docs, "HorizontalPodAutoscaler").values():
        if hpa["spec"]["scaleTargetRef"]["name"] in WORKERS:
            assert hpa["spec"]["maxReplicas"] <= limit, hpa["metadata"]["name"]


def test_worker_manifests_say_why_replicas_are_bounded() -> None:
    for name in CONSUMERS:
        text = (BASE / f"{name.removesuffix('-worker')}.yaml").read_text()
        assert "BOUNDED BY PARTITIONS" in text and "TOPIC_PARTITIONS" in text, name


@RENDERS
def test_every_api_has_a_cpu_hpa(directory: Path) -> None:
    docs = rendered(directory)
    all_hpas = by_kind(docs, "HorizontalPodAutoscaler").values()
    hpas = {hpa["spec"]["scaleTargetRef"]["name"]: hpa for hpa in all_hpas}
    deployments = by_kind(docs, "Deployment")
    for name in APIS:
        hpa = hpas[name]
        assert hpa["apiVersion"] == "autoscaling/v2"
        assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
        assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
        assert [metric["resource"]["name"] for metric in hpa["spec"]["metrics"]] == ["cpu"]
        # Utilisation is relative to the request, so the request must be there.
        assert "cpu" in the_container(deployments[name])["resources"]["requests"]
        # The HPA owns the count: a fixed replicas field would reset it on every apply.
        assert "replicas" not in deployments[name]["spec"], name


@RENDERS
def test_every_deployment_has_a_pdb_selecting_its_pods(directory: Path) -> None:
    docs = rendered(directory)
    pdbs = list(by_kind(docs, "PodDisruptionBudget").values())
    for name, deployment in by_kind(docs, "Deployment").items():
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
        matching = [pdb for pdb in pdbs if selects(pdb["spec"]["selector"]["matchLabels"], pod_labels)]
        assert len(matching) == 1, f"{name}: {len(matching)} PDBs select its pods"


# ---------------------------------------------------------------------------------------------
# Pods: image, user, resources, table storage


def dockerfile_uid() -> int:
    match = re.search(r"useradd\b.*--uid (\d+)", (ROOT / "Dockerfile").read_text())
    assert match, "the Dockerfile no longer creates its user with --uid"
    return int(match.group(1))


@RENDERS
def test_pods_run_the_one_image_as_the_images_non_root_user(directory: Path) -> None:
    docs = rendered(directory)
    assert dockerfile_uid() == UID
    tag = "latest" if directory == BASE else kustomization(PRODUCTION)["images"][0]["newTag"]
    workloads = [*by_kind(docs, "Deployment").values(), *by_kind(docs, "Job").values()]
    assert len(workloads) == len(PROCESSES) + 1
    for workload in workloads:
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == UID
        for container in containers(workload):
            where = f"{workload['metadata']['name']}/{container['name']}"
            assert container["image"] == f"{IMAGE}:{tag}", where
            assert container["securityContext"]["allowPrivilegeEscalation"] is False, where
            assert container["securityContext"]["capabilities"]["drop"] == ["ALL"], where
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][kind]), f"{where} {kind}"


def test_worker_tables_live_on_an_empty_dir() -> None:
    for name in WORKERS:
        deployment = by_kind(rendered(BASE), "Deployment")[name]
        container = the_container(deployment)
        table_dir = {item["name"]: item.get("value") for item in container["env"]}["TABLE_DIR"]
        mount = next(m for m in container["volumeMounts"] if m["mountPath"] == table_dir)
        volumes = deployment["spec"]["template"]["spec"]["volumes"]
        volume = next(v for v in volumes if v["name"] == mount["name"])
        assert "emptyDir" in volume, name


# ---------------------------------------------------------------------------------------------
# Production overlay


def test_production_overlay_sets_namespace_tag_partitions_and_more_capacity() -> None:
    base, prod = rendered(BASE), rendered(PRODUCTION)
    namespace = kustomization(PRODUCTION)["namespace"]
    assert namespace in by_kind(prod, "Namespace")
    for doc in prod:
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == namespace, f"{doc['kind']}/{doc['metadata']['name']}"
    assert kustomization(PRODUCTION)["images"][0]["newTag"] != "latest"
    assert partitions(prod) == 12 > partitions(base)
    base_deployments, prod_deployments = by_kind(base, "Deployment"), by_kind(prod, "Deployment")
    for name in WORKERS:
        assert prod_deployments[name]["spec"]["replicas"] > base_deployments[name]["spec"]["replicas"], name
    base_hpas, prod_hpas = by_kind(base, "HorizontalPodAutoscaler"), by_kind(prod, "HorizontalPodAutoscaler")
    for name in APIS:
        assert prod_hpas[name]["spec"]["maxReplicas"] > base_hpas[name]["spec"]["maxReplicas"], name

    def resources(deployments: dict[str, Doc], name: str) -> Doc:
        return the_container(deployments[name])["resources"]

    bigger = [
        name for name in PROCESSES if resources(prod_deployments, name) != resources(base_deployments, name)
    ]
    assert sorted(bigger) == sorted(PROCESSES)


@RENDERS
def test_every_deployment_spreads_its_replicas_over_nodes(directory: Path) -> None:
    for name, deployment in by_kind(rendered(directory), "Deployment").items():
        pod = deployment["spec"]["template"]
        (spread,) = pod["spec"]["topologySpreadConstraints"]
        assert spread["topologyKey"] == "kubernetes.io/hostname", name
        assert spread["labelSelector"]["matchLabels"].items() <= pod["metadata"]["labels"].items(), name


@RENDERS
def test_network_policies_let_in_only_what_must_talk(directory: Path) -> None:
    """Every pod is under the default deny; each port a container serves is let in by some policy
    (its own component's, or the metrics one); only ingest and the console take anyone."""
    docs = rendered(directory)
    policies = by_kind(docs, "NetworkPolicy")

    def applies(policy: Doc, labels: dict[str, str]) -> bool:
        selector = policy["spec"]["podSelector"]
        if not selects(selector.get("matchLabels", {}), labels):
            return False
        return all(
            labels.get(e["key"]) in e["values"]
            for e in selector.get("matchExpressions", [])
            if e["operator"] == "In"
        )

    deny = policies["pd-default-deny"]
    assert "ingress" not in deny["spec"] and deny["spec"]["policyTypes"] == ["Ingress"]
    for name, deployment in by_kind(docs, "Deployment").items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert applies(deny, labels), f"{name} is not under the default deny"
        served = {p["containerPort"] for p in the_container(deployment)["ports"]}
        allowed = {
            port["port"]
            for policy in policies.values()
            if applies(policy, labels)
            for rule in policy["spec"].get("ingress", [])
            for port in rule.get("ports", [])
        }
        assert served <= allowed, f"{name} serves {served - allowed}, which no policy lets in"
    public = policies["pd-public-entrypoints"]["spec"]["ingress"]
    assert all("from" not in rule for rule in public)  # ingest and the console take anyone
    assert all(
        "from" in rule
        for name, p in policies.items()
        if name != "pd-public-entrypoints"
        for rule in p["spec"].get("ingress", [])
    )


MONITORING = K8S / "monitoring"


def test_service_monitors_scrape_every_process_labelled_as_the_down_alerts_select() -> None:
    """Where the Prometheus Operator runs (deploy/k8s/monitoring), every process's Service is
    scraped once, its `up` series labelled `job` (the Service's name) and `component`, and each
    down alert of deploy/prometheus/rules selects exactly its processes (the Operator's CRDs are
    not in the bundled schemas: the monitors' shape is checked here)."""
    from tests.unit.test_observability import up_selector

    monitors = by_kind(rendered(MONITORING), "ServiceMonitor")
    services = by_kind(rendered(BASE), "Service")

    def chosen(selector: Doc, labels: dict[str, str]) -> bool:
        return selects(selector.get("matchLabels", {}), labels) and all(
            labels.get(e["key"]) in e["values"]
            for e in selector.get("matchExpressions", [])
            if e["operator"] == "In"
        )

    series: dict[str, dict[str, str]] = {}
    for monitor in monitors.values():
        assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
        for name, service in services.items():
            if not chosen(monitor["spec"]["selector"], service["metadata"]["labels"]):
                continue
            ports = {port["name"] for port in service["spec"]["ports"]}
            for endpoint in monitor["spec"]["endpoints"]:
                assert endpoint["port"] in ports, (
                    f"{monitor['metadata']['name']}: {name} has no port {endpoint['port']}"
                )
                assert name not in series, f"{name} is scraped twice"
                series[name] = {"job": name} | {
                    r["targetLabel"]: r["replacement"] for r in endpoint["relabelings"]
                }
    assert sorted(series) == sorted(PROCESSES)
    for alert, expected in (("PdApiDown", APIS), ("PdWorkerDown", CONSUMERS)):
        selector = up_selector(alert)
        assert (
            sorted(name for name, labels in series.items() if selector.items() <= labels.items()) == expected
        )


@RENDERS
def test_the_ingress_serves_ingest_and_the_console_over_tls_only(directory: Path) -> None:
    docs = rendered(directory)
    (ingress,) = by_kind(docs, "Ingress").values()
    services = by_kind(docs, "Service")
    (tls,) = ingress["spec"]["tls"]
    backends = set()
    for rule in ingress["spec"]["rules"]:
        assert rule["host"] in tls["hosts"], f"{rule['host']} is served without TLS"
        for path in rule["http"]["paths"]:
            backend = path["backend"]["service"]
            ports = {port["name"] for port in services[backend["name"]]["spec"]["ports"]}
            assert backend["port"]["name"] in ports, backend
            backends.add(backend["name"])
    assert backends == {"ingest", "console"}

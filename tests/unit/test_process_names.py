"""`pd <process>` knows every process, and each name's function is a console script too."""

from __future__ import annotations

import importlib
import tomllib
from pathlib import Path

import pytest
import yaml

from services.__main__ import PROCESSES, main

ROOT = Path(__file__).resolve().parents[2]


def test_every_process_resolves_and_has_its_own_console_script() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    for name, target in PROCESSES.items():
        module, function = target.split(":")
        assert callable(getattr(importlib.import_module(module), function)), name
        assert scripts[f"pd-{name}"] == target, name
    assert scripts["pd"] == "services.__main__:main"


def test_every_process_is_deployed_by_compose_and_kubernetes() -> None:
    """A process `pd` knows runs in the compose stack and in the Kubernetes base, by its console
    script (the topics one-shot as a compose job and a Kubernetes Job)."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    compose_commands = {s["command"][0] for s in compose.values() if "build" in s}
    k8s_commands = set()
    for path in (ROOT / "deploy" / "k8s" / "base").glob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc["kind"] in ("Deployment", "Job"):
                k8s_commands |= {c["command"][0] for c in doc["spec"]["template"]["spec"]["containers"]}
    expected = {f"pd-{name}" for name in PROCESSES}
    assert compose_commands == expected
    assert k8s_commands == expected


def test_an_unknown_process_is_refused_with_the_choices(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["scoring-wrker"])
    assert stopped.value.code == 2
    assert "choose one of ingest, scoring-worker" in capsys.readouterr().err

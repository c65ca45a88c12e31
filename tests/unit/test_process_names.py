"""`pd <process>` knows every process, and each name's function is a console script too."""

from __future__ import annotations

import importlib
import tomllib
from pathlib import Path

import pytest

from services.__main__ import PROCESSES, main

ROOT = Path(__file__).resolve().parents[2]


def test_every_process_resolves_and_has_its_own_console_script() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    for name, target in PROCESSES.items():
        module, function = target.split(":")
        assert callable(getattr(importlib.import_module(module), function)), name
        assert scripts[f"pd-{name}"] == target, name
    assert scripts["pd"] == "services.__main__:main"


def test_an_unknown_process_is_refused_with_the_choices(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["scoring-wrker"])
    assert stopped.value.code == 2
    assert "choose one of ingest, scoring-worker" in capsys.readouterr().err

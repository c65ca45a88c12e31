"""The browser assets we serve ourselves (no CDN): found where `make install` put them, served
by name only, and the APIs' Swagger UI pointed at them."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from services.scoring.api import create_app as scoring_api
from services.scoring.settings import ScoringSettings
from shared.web_assets import VENDOR_FILES, MissingAssets, assets_dir, self_hosted_docs, vendor_router


def test_make_install_put_every_asset_where_the_processes_look() -> None:
    root = assets_dir(None)
    for relative in VENDOR_FILES.values():
        assert (root / relative).stat().st_size > 100


def test_a_missing_install_stops_the_process_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(MissingAssets, match="make install"):
        assets_dir(str(tmp_path))


def test_only_the_named_files_are_served() -> None:
    app = FastAPI()
    app.include_router(vendor_router(assets_dir(None)))
    client = TestClient(app)
    served = client.get("/assets/vendor/echarts.min.js")
    assert served.status_code == 200 and served.headers["content-type"].startswith("text/javascript")
    assert "echarts" in served.text[:2000].lower()
    assert client.get("/assets/vendor/package.json").status_code == 404
    assert client.get("/assets/vendor/..%2Fecharts%2Fpackage.json").status_code == 404


def test_the_docs_page_loads_swagger_ui_from_the_api_itself() -> None:
    app = FastAPI(title="Probe", docs_url=None, redoc_url=None)
    self_hosted_docs(app, assets_dir(None))
    page = TestClient(app).get("/docs").text
    assert "/assets/vendor/swagger-ui-bundle.js" in page and "/assets/vendor/swagger-ui.css" in page
    assert "http://" not in page and "https://" not in page  # nothing from another host
    assert '"validatorUrl": null' in page


def test_an_ops_api_has_no_cdn_docs_left() -> None:
    client = TestClient(scoring_api(ScoringSettings(), CollectorRegistry()))
    assert client.get("/redoc").status_code == 404
    assert "https://" not in client.get("/docs").text

"""Browser assets served by our own processes, never by a CDN: the console's chart library and
the Swagger UI behind every API's `/docs`. CDNs are slow or blocked in mainland China and absent
on closed networks, so a page of ours loads nothing from outside the machine that serves it.

The files come from the npm registry, pinned with their integrity hashes in `web/package-lock.json`,
installed by `make install` (`npm ci` into `web/node_modules`) and by the container image's build.
`WEB_ASSETS_DIR` points elsewhere (the image sets it); the default is the repository's copy.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, HTTPException, status
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

# The repository's web/node_modules (an editable install keeps shared/ inside the repository).
DEFAULT_DIR = Path(__file__).resolve().parent.parent / "web" / "node_modules"

# URL name -> path under node_modules. Only these are served: nothing else in node_modules leaks.
VENDOR_FILES: dict[str, str] = {
    "echarts.min.js": "echarts/dist/echarts.min.js",
    "swagger-ui-bundle.js": "swagger-ui-dist/swagger-ui-bundle.js",
    "swagger-ui.css": "swagger-ui-dist/swagger-ui.css",
    "swagger-favicon.png": "swagger-ui-dist/favicon-32x32.png",
}
VENDOR_PREFIX = "/assets/vendor"
_MEDIA_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}


class MissingAssets(RuntimeError):
    """The npm packages are not installed where the settings say."""


def assets_dir(configured: str | None) -> Path:
    """Where the vendored files are; raises if any is missing, so a process fails at start, not
    with a blank page later."""
    root = Path(configured) if configured else DEFAULT_DIR
    missing = [name for name, relative in VENDOR_FILES.items() if not (root / relative).is_file()]
    if missing:
        raise MissingAssets(
            f"web assets missing under {root} ({', '.join(missing)}): run `make install` "
            "(npm ci in web/), or set WEB_ASSETS_DIR to an installed copy"
        )
    return root


def vendor_router(root: Path) -> APIRouter:
    """`GET /assets/vendor/{name}`: the vendored files, cacheable for a day."""
    router = APIRouter(include_in_schema=False)

    @router.get(VENDOR_PREFIX + "/{name}")
    async def vendor_file(name: str) -> FileResponse:
        relative = VENDOR_FILES.get(name)
        if relative is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND)
        return FileResponse(
            root / relative,
            media_type=_MEDIA_TYPES[Path(name).suffix],
            headers={"Cache-Control": "public, max-age=86400"},
        )

    return router


def self_hosted_docs(app: FastAPI, root: Path) -> None:
    """Swagger UI at `/docs` from our own copy. Create the app with `docs_url=None, redoc_url=None`:
    FastAPI's own pages load Swagger UI and ReDoc from a CDN."""
    app.include_router(vendor_router(root))
    title = f"{app.title} API"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=title,
            swagger_js_url=f"{VENDOR_PREFIX}/swagger-ui-bundle.js",
            swagger_css_url=f"{VENDOR_PREFIX}/swagger-ui.css",
            swagger_favicon_url=f"{VENDOR_PREFIX}/swagger-favicon.png",
            # The default sends the spec to validator.swagger.io for a badge: off, it is outside.
            swagger_ui_parameters={"validatorUrl": None},
        )

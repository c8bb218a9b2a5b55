"""``/docs`` (Swagger UI) and ``/redoc`` (ReDoc), served by gated itself: they work with no internet.

FastAPI's own pages load Swagger UI and ReDoc from a CDN, so an adapter author on a machine without internet access
(or behind a proxy that blocks the CDN) sees a blank page. The files come instead from the ``fastapi-offline``
package, pinned to one version in pyproject.toml (:data:`ASSETS` records each file's sha256, checked by
tests/e2e/test_openapi_docs.py), and are served under ``/docs-assets/``. The pages themselves are kanmon's
(``static/docs.html``, ``static/redoc.html``, each with a small start script), so a Content-Security-Policy can hold
them to this server: nothing they load or fetch comes from anywhere else.
"""

from __future__ import annotations

import functools
from importlib import resources

from fastapi import APIRouter, HTTPException, Request, Response

__all__ = ["ASSETS", "router"]

router = APIRouter(include_in_schema=False)

#: The files of fastapi-offline 1.7.7 this module serves: name -> (media type, sha256 of the file).
ASSETS = {
    "swagger-ui-bundle.js": (
        "text/javascript; charset=utf-8",
        "4b5a9b35a1adf37f00d39c0bae23cdb37007e2946240ef035137cc85b4d55349",
    ),
    "swagger-ui.css": ("text/css; charset=utf-8", "ca238f7d7c2cf4480c1e77a9c3b9da915ab216e96ffd354e69076560c650c6de"),
    "redoc.standalone.js": (
        "text/javascript; charset=utf-8",
        "1320f442151c57c447d3b70c7ffc6c4f86d08464020fe34c8cc5d3164e9944f0",
    ),
    "favicon.png": ("image/png", "d16f72cf5a2773eba499cc7f3db1923c6f5f73de990f739e3a05806aafec15b7"),
}
#: kanmon's own start scripts of the two pages (in kanmon/web/static).
OWN_ASSETS = {"docs.js": "text/javascript; charset=utf-8", "redoc.js": "text/javascript; charset=utf-8"}

# Everything from this server. Swagger UI and ReDoc set element styles from script ('unsafe-inline' styles; no inline
# script), ReDoc runs its search in a worker made from a blob: URL, and both show SVG icons as data: images.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:;"
        " font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; base-uri 'none'; form-action 'none';"
        " frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


@router.get("/docs")
async def swagger_ui(request: Request) -> Response:
    """Swagger UI on this gated's /openapi.json."""
    return _page("docs.html", request)


@router.get("/redoc")
async def redoc(request: Request) -> Response:
    """ReDoc on this gated's /openapi.json."""
    return _page("redoc.html", request)


@router.get("/docs-assets/{name}")
async def docs_asset(name: str) -> Response:
    """A file of Swagger UI or ReDoc, or a page's start script (cached for a day: each is fixed for a release)."""
    headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "public, max-age=86400"}
    if name in OWN_ASSETS:
        return Response(_own(name), media_type=OWN_ASSETS[name], headers=headers)
    if name not in ASSETS:
        raise HTTPException(status_code=404, detail=f"no asset {name!r}")
    return Response(_vendored(name), media_type=ASSETS[name][0], headers=headers)


def _page(name: str, request: Request) -> Response:
    root = str(request.scope.get("root_path") or "").replace('"', "%22").replace("<", "%3C")
    page = _own(name).replace("{{root}}", root)
    return Response(page, media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)


@functools.cache
def _own(name: str) -> str:
    return (resources.files("kanmon.web") / "static" / name).read_text(encoding="utf-8")


@functools.cache
def _vendored(name: str) -> bytes:
    """A file of the fastapi-offline package (read once; its sha256 is in :data:`ASSETS`)."""
    return (resources.files("fastapi_offline") / "static" / name).read_bytes()

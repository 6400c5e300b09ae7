"""Swagger UI (``/docs``) and ReDoc (``/redoc``) from the service's own static files.

FastAPI's default pages fetch their scripts from a CDN and ReDoc's fonts from Google, so on an
isolated provincial network they stay blank. The assets ship pinned in the ``fastapi-offline``
package, whose version pyproject.toml pins (1.7.7 ships Swagger UI 5.32.6 and ReDoc 2.5.3).
"""

import base64
import hashlib
import re

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_URL = "/docs"
REDOC_URL = "/redoc"
ASSETS_URL = "/static/docs"
SWAGGER_JS = f"{ASSETS_URL}/swagger-ui-bundle.js"
SWAGGER_CSS = f"{ASSETS_URL}/swagger-ui.css"
REDOC_JS = f"{ASSETS_URL}/redoc.standalone.js"
FAVICON = f"{ASSETS_URL}/favicon.png"

_INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL)


def _confined(page: HTMLResponse) -> HTMLResponse:
    """``page`` with a Content-Security-Policy that keeps it on this server: the assets may still
    reach out (ReDoc's sidebar loads the Redocly logo from cdn.redoc.ly), and the browser refuses.
    Only the page's own inline script runs (by hash); inline styles stay, both UIs inject them."""
    hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(script).digest()).decode()}'"
        for script in _INLINE_SCRIPT.findall(page.body)
    )
    page.headers["content-security-policy"] = (
        f"default-src 'self'; script-src 'self' {hashes}; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; worker-src 'self' blob:; object-src 'none'; base-uri 'self'"
    )
    return page


def install_docs(app: FastAPI) -> None:
    """The documentation pages of an app created with ``docs_url=None, redoc_url=None``."""
    if app.openapi_url is None:  # no document, nothing to show
        return
    openapi_url = app.openapi_url
    oauth2_redirect_url = app.swagger_ui_oauth2_redirect_url
    app.mount(ASSETS_URL, StaticFiles(packages=[("fastapi_offline", "static")]), name="docs-assets")

    # Behind a proxy that strips a prefix, the browser must ask for the prefixed URLs.
    def prefixed(request: Request, url: str) -> str:
        root_path: str = request.scope.get("root_path", "").rstrip("/")
        return root_path + url

    @app.get(DOCS_URL, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        page = get_swagger_ui_html(
            openapi_url=prefixed(request, openapi_url),
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=oauth2_redirect_url and prefixed(request, oauth2_redirect_url),
            init_oauth=app.swagger_ui_init_oauth,
            swagger_ui_parameters=app.swagger_ui_parameters,
            swagger_js_url=prefixed(request, SWAGGER_JS),
            swagger_css_url=prefixed(request, SWAGGER_CSS),
            swagger_favicon_url=prefixed(request, FAVICON),
        )
        return _confined(page)

    if oauth2_redirect_url:

        @app.get(oauth2_redirect_url, include_in_schema=False)
        async def swagger_ui_oauth2_redirect() -> HTMLResponse:
            return get_swagger_ui_oauth2_redirect_html()

    @app.get(REDOC_URL, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        page = get_redoc_html(
            openapi_url=prefixed(request, openapi_url),
            title=f"{app.title} - ReDoc",
            redoc_js_url=prefixed(request, REDOC_JS),
            redoc_favicon_url=prefixed(request, FAVICON),
            with_google_fonts=False,
        )
        return _confined(page)

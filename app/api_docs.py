"""``/docs``: Swagger UI on the JSON API's OpenAPI document, served from the app's own static files.

FastAPI's built-in page loads Swagger UI from a CDN and starts it with an inline script; neither passes
our Content-Security-Policy (``script-src 'self'``), and a CDN is no use offline. The assets come from the
npm package ``swagger-ui-dist`` (``static/vendor``, installed by ``make install``) and the page's own
script from ``/static/api-docs.js``.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from app.auth.policy import Access, allow

SWAGGER_UI = "/static/vendor/node_modules/swagger-ui-dist"

router = APIRouter(tags=["system"], include_in_schema=False)


@router.get("/docs", name="api_docs", dependencies=[allow(Access.public)])
def api_docs(request: Request) -> HTMLResponse:
    """The API's interactive documentation, for anyone: it shows only what /api/v1/openapi.json shows."""
    context = {"title": request.app.title, "openapi_url": request.app.openapi_url, "swagger_ui": SWAGGER_UI}
    response: HTMLResponse = request.app.state.templates.TemplateResponse(request, "api/docs.html", context)
    return response

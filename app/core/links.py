"""Links in headers: ``Location`` of what a 201 created, ``Link`` to a list's next page (RFC 8288).

Both are paths (relative references): behind a reverse proxy the path is what the client used,
while a host read from the request might be the proxy's view of itself.
"""

from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

from fastapi import Request, Response
from starlette.datastructures import URL

API_PREFIX = "/api/v1"
"""Where the API's routers are mounted (app.main), the one place the version's path is written."""

# For a 201's ``responses``: FastAPI merges it with the route's own description of that answer.
LOCATION_HEADER: dict[str, Any] = {
    "Location": {"description": "Path of the created resource", "schema": {"type": "string"}}
}
CREATED_WITH_LOCATION: dict[int | str, dict[str, Any]] = {201: {"headers": LOCATION_HEADER}}


def locate(request: Request, response: Response, route: str, **path_params: Any) -> None:
    """``Location`` of a 201: the path of route ``route`` (its endpoint's name) for the created
    resource — named by route rather than spelt out, so that it follows the routes if they move."""
    response.headers["Location"] = request.url_for(route, **path_params).path


def next_page_link(url: URL, cursor: str) -> str:
    """``Link`` to the page after ``cursor``: the request's own path and query with ``cursor``
    replaced (every other parameter kept, in order, repeated ones too)."""
    kept = [(name, value) for name, value in parse_qsl(url.query, keep_blank_values=True) if name != "cursor"]
    # quote rather than urlencode's default quote_plus: percent-encoding throughout, "+" never
    # standing for a space that a reader of the header might take literally.
    target = url.path + "?" + urlencode([*kept, ("cursor", cursor)], quote_via=quote)
    return f'<{target}>; rel="next"'

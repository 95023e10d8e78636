"""The web console's static files (plain HTML, CSS and JavaScript; no build step, no CDN).

How it is served: the wallet API's `GetConsoleAsset` method answers `GET /console` and
`GET /console/<file>` with the file as a google.api.HttpBody, so Envoy's gRPC-JSON transcoder
delivers it on the gateway listener through the same route and cluster as the wallet API (no
other port, nothing to mount into Envoy; the console always matches the service's version). The
route adds the security headers (envoy_config/admin_routes.py). The files need no token; the page
signs in with an admin token it keeps in sessionStorage and sends as `Authorization: Bearer` to
the wallet API, which enforces the roles.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

# File name -> content type: the only files served (anything else is 404).
ASSETS: dict[str, str] = {
    "index.html": "text/html; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
}
INDEX = "index.html"


@cache
def asset(name: str) -> tuple[str, bytes] | None:
    """(content type, bytes) of a console file; None when `name` is not one of ASSETS."""
    name = name or INDEX
    ctype = ASSETS.get(name)
    if ctype is None:
        return None
    return ctype, (resources.files(__package__) / "static" / name).read_bytes()


__all__ = ["ASSETS", "INDEX", "asset"]

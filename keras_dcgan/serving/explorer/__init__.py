"""The explorer page: plain HTML, CSS and JavaScript shipped in the package (no build step, no
CDN, works offline), served at the REST port's root by `dcgan serve` and by `dcgan explore`.

The page talks to the model only through TF Serving's REST API (`GET /v1/models/<name>/metadata`
and `POST /v1/models/<name>:predict` with the exported signatures `from_seeds`, `interpolate`
and `serving_default`), so it works against real `tensorflow_model_server` through
`dcgan explore --rest=http://host:8501` (`keras_dcgan.serving.proxy`).

    static_file(path, model_name)  (bytes, content type) of "/", "/index.html" or
                                   "/explorer/<file>" (only the files in FILES), else None

The page's default model name is injected into index.html (`?model=<name>` overrides it).
"""

from __future__ import annotations

import html
from importlib import resources

FILES = {
    "index.html": "text/html; charset=utf-8",
    "explorer.js": "text/javascript; charset=utf-8",
    "explorer.css": "text/css; charset=utf-8",
}
MODEL_PLACEHOLDER = "{{MODEL_NAME}}"
PAGE_PATHS = ("/", "/index.html", "/explorer/", "/explorer/index.html")


def asset(name: str) -> bytes:
    """The bytes of one of the page's files (a name in FILES)."""
    if name not in FILES:
        raise KeyError(f"{name!r} is not one of the explorer's files ({', '.join(FILES)}).")
    return resources.files(__name__).joinpath(name).read_bytes()


def page(model_name: str) -> bytes:
    """index.html with `model_name` as the page's default model."""
    text = asset("index.html").decode("utf-8")
    return text.replace(MODEL_PLACEHOLDER, html.escape(model_name, quote=True)).encode("utf-8")


def static_file(path: str, model_name: str) -> tuple[bytes, str] | None:
    """(body, Content-Type) for a request path (a query string is ignored), or None when the
    path is not one of the page's: only the known file names are served, never a path built
    from the request (no directory traversal)."""
    path = path.split("?", 1)[0].split("#", 1)[0]
    if path in PAGE_PATHS:
        return page(model_name), FILES["index.html"]
    prefix = "/explorer/"
    if path.startswith(prefix) and path[len(prefix) :] in FILES:
        name = path[len(prefix) :]
        if name == "index.html":
            return page(model_name), FILES[name]
        return asset(name), FILES[name]
    return None

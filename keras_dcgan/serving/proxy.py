"""`dcgan explore`: the explorer page in front of any TF Serving REST API.

`ExplorerProxy(rest_url, model_name)` serves the page's files (`keras_dcgan.serving.explorer`)
and forwards every request under `/v1/` to the model server at `rest_url` with urllib (same
method, path, query and body; the remote's status and body come back as they are), so the page
needs no CORS support from the model server, real `tensorflow_model_server` included. A remote
that cannot be reached, or that does not answer within `timeout` seconds, gives a 502 JSON
`{"error": ...}` that the page shows. Needs neither TensorFlow nor gRPC.

    with ExplorerProxy("http://127.0.0.1:8501", "dcgan", port=8080) as proxy:
        ...  # http://127.0.0.1:8080/
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.error
import urllib.parse
import urllib.request
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from keras_dcgan.errors import UserError
from keras_dcgan.serving import explorer
from keras_dcgan.serving.ports import cannot_serve

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 120.0  # seconds for the model server to answer one forwarded request
MAX_BODY = 32 << 20  # the local server's default request limit
CLIENT_TIMEOUT = 30.0  # seconds a browser has to send a request


def check_rest_url(url: str) -> str:
    """`url` without a trailing slash; UserError unless it is http(s)://host[:port][/prefix]."""
    parsed = urllib.parse.urlsplit(str(url).strip())
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise UserError(
            f"--rest must be the model server's REST address, e.g. http://127.0.0.1:8501; got "
            f"{url!r}."
        )
    if parsed.query or parsed.fragment:
        raise UserError(f"--rest must not have a query or fragment; got {url!r}.")
    try:
        parsed.port  # noqa: B018 (raises ValueError for a bad port)
    except ValueError:
        raise UserError(f"--rest has an invalid port; got {url!r}.") from None
    return urllib.parse.urlunsplit((parsed.scheme, parsed.netloc, parsed.path.rstrip("/"), "", ""))


class _ProxyHandler(BaseHTTPRequestHandler):
    # Set on the subclass that ExplorerProxy makes:
    rest_url: str
    model_name: str
    forward_timeout: float = DEFAULT_TIMEOUT
    timeout = CLIENT_TIMEOUT  # socket timeout for the browser's side
    protocol_version = "HTTP/1.1"
    server_version = "keras-dcgan-explore"

    def log_message(self, fmt, *args):
        log.debug("explore %s", fmt % args)

    def _send(self, status: int, data: bytes, content_type: str, close: bool = False):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-cache")
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _json(self, status: int, message: str, close: bool = False):
        self._send(status, json.dumps({"error": message}).encode(), "application/json", close)

    def do_GET(self):  # noqa: N802
        found = explorer.static_file(self.path, self.model_name)
        if found is not None:
            self._send(HTTPStatus.OK, *found)
        elif self.path.startswith("/v1/"):
            self._forward(None)
        else:
            self._json(HTTPStatus.NOT_FOUND, f"Unknown path {self.path[:80]!r}.")

    do_HEAD = do_GET

    def do_POST(self):  # noqa: N802
        if not self.path.startswith("/v1/"):
            self._json(HTTPStatus.NOT_FOUND, f"Unknown path {self.path[:80]!r}.", close=True)
            return
        length = (self.headers.get("Content-Length") or "").strip()
        if not (length.isascii() and length.isdigit()) or len(length) > 15:
            self._json(HTTPStatus.LENGTH_REQUIRED, "A POST needs a Content-Length header.", True)
            return
        if int(length) > MAX_BODY:
            message = f"The body has {length} bytes, above the limit of {MAX_BODY}."
            self._json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, message, True)
            return
        body = self.rfile.read(int(length))
        self._forward(body)

    def _forward(self, body: bytes | None):
        url = self.rest_url + self.path
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = self.headers.get("Content-Type", "application/json")
        request = urllib.request.Request(url, data=body, headers=headers, method=self.command)
        try:
            with urllib.request.urlopen(request, timeout=self.forward_timeout) as r:
                status, data, kind = r.status, r.read(), r.headers.get("Content-Type")
        except urllib.error.HTTPError as e:  # the remote's 4xx/5xx, passed on as it is
            status, data, kind = e.code, e.read(), e.headers.get("Content-Type")
        except (urllib.error.URLError, OSError, ValueError) as e:
            reason = getattr(e, "reason", e)
            self._json(HTTPStatus.BAD_GATEWAY,
                       f"Cannot reach the model server at {self.rest_url}: {reason}.")  # fmt: skip
            return
        self._send(status, data, kind or "application/json")


class ExplorerProxy:
    """The explorer page on (host, port), its API calls forwarded to `rest_url`; `start()`,
    `stop()`, or a context manager. Port 0 picks a free port (`port` after `start()`)."""

    def __init__(self, rest_url: str, model_name: str = "dcgan", host: str = "127.0.0.1",
                 port: int = 8080, timeout: float = DEFAULT_TIMEOUT):  # fmt: skip
        if not model_name or "/" in model_name or ":" in model_name:
            raise UserError(
                f"--model_name must be a model name (no '/' or ':'); got {model_name!r}."
            )
        if not timeout > 0:
            raise UserError(f"--timeout must be positive; got {timeout}.")
        self.rest_url = check_rest_url(rest_url)
        self.model_name = model_name
        self.host, self._port, self.timeout = host, port, float(timeout)
        self.port = None
        self._http = None

    def start(self) -> ExplorerProxy:
        handler = type("ProxyHandler", (_ProxyHandler,), {
            "rest_url": self.rest_url, "model_name": self.model_name,
            "forward_timeout": self.timeout,
        })  # fmt: skip
        try:
            self._http = ThreadingHTTPServer((self.host, self._port), handler)
        except OSError as e:
            raise cannot_serve("the explorer", self.host, self._port, e, "--port") from None
        self._http.daemon_threads = True
        self.port = self._http.server_address[1]
        threading.Thread(target=self._http.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

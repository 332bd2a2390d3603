"""A test HTTP server on 127.0.0.1 (an ephemeral port), served from a background thread while in a ``with`` block.
The fakes of outside services (OpenAI, the hub, a weight host) build on it."""

from __future__ import annotations

import threading
from http.server import ThreadingHTTPServer


class LoopbackServer:
    """``handler`` (a ``BaseHTTPRequestHandler`` class) served on 127.0.0.1; ``url`` is its root."""

    def __init__(self, handler):
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

"""A pilot of the listening test on one machine: webMUSHRA and the pack served on 127.0.0.1, results straight
into a study folder. No PHP and no web server are needed.

The server answers

- ``GET /...``: the files of the user's webMUSHRA folder, except ``service/`` and ``results/``;
- ``GET /configs/<pack yaml>``: the pack's ``webmushra.yaml``, and every audio path that config names: the
  pack's ``audio/<clip>.wav`` (nothing else of the pack, and never the answer key);
- ``POST /service/write.php`` (the config's ``remoteService``): webMUSHRA's ``sessionJSON=<json>`` (sent without
  URL-encoding, so the JSON is read as sent).

Each accepted session is kept as ``<study>/webmushra/sessions/<uuid>.json`` (a repeated submission of the same
session, such as a second click on "send", is answered as a success and not counted again); then
``<study>/webmushra/lms.csv`` (webMUSHRA's format plus ``session_uuid``) is rebuilt from all sessions and the study
tables (``responses.csv``, ``preferences.csv``, ``demographics.csv``, ``key.csv``, ``import_report.csv``) are
rewritten through :func:`~echoscript_utils.listening.webmushra.read_webmushra`, each file atomically.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import posixpath
import sys
import threading
import time
import urllib.parse
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml

from ..artifacts import atomic_write_text, ensure_dir
from ..errors import DependencyError, InputError, OutputError
from .webmushra import lms_text, read_webmushra

__all__ = ["WEBMUSHRA_ENV", "ListeningServer", "find_webmushra", "serve"]

#: Environment variable naming the webMUSHRA folder when ``--webmushra`` is not given.
WEBMUSHRA_ENV = "ECHOSCRIPT_WEBMUSHRA"
WEBMUSHRA_SOURCE = "https://github.com/audiolabs/webMUSHRA"
_MAX_BODY = 64 << 20


def find_webmushra(path: str | os.PathLike | None = None) -> Path:
    """The webMUSHRA folder: ``path``, else ``$ECHOSCRIPT_WEBMUSHRA``; it must hold ``index.html``,
    ``startup.js`` and ``lib/webmushra/``.

    Raises:
        DependencyError: no folder given, or it is not webMUSHRA; the message says where to get it.
    """
    where = path if path is not None else os.environ.get(WEBMUSHRA_ENV)
    if not where:
        raise DependencyError(f"no webMUSHRA folder: download webMUSHRA from {WEBMUSHRA_SOURCE} (git clone, or "
                              f"Code > Download ZIP and unzip it) and pass --webmushra DIR or set {WEBMUSHRA_ENV}")
    root = Path(where).expanduser()
    missing = [n for n in ("index.html", "startup.js", "lib/webmushra") if not (root / n).exists()]
    if missing:
        raise DependencyError(f"{root}: not a webMUSHRA folder (no {', '.join(missing)}); pass the folder that "
                              f"holds index.html, from {WEBMUSHRA_SOURCE}")
    return root


def _find_pack(pack: str | os.PathLike, key: str | os.PathLike | None) -> tuple[Path, Path]:
    p = Path(pack)
    if (p / "pack" / "webmushra.yaml").is_file():
        p = p / "pack"
    if not (p / "webmushra.yaml").is_file():
        raise InputError(f"{p}: no webmushra.yaml; pass the listening pack folder (pack/) or the folder holding "
                         f"it (build it with: echoscript listening pack)")
    k = Path(key) if key is not None else p.parent / "key.csv"
    if not k.is_file():
        raise InputError(f"{k}: answer key not found; pass --key with the pack's key.csv")
    return p, k


def _stimulus_paths(node) -> list[str]:
    """Every audio path a webMUSHRA config names (``stimuli`` maps, ``stimulus`` and ``reference`` entries)."""
    out: list[str] = []
    if isinstance(node, list):
        for v in node:
            out += _stimulus_paths(v)
    elif isinstance(node, dict):
        for k, v in node.items():
            if k == "stimuli" and isinstance(v, dict):
                out += [str(x) for x in v.values()]
            elif k in ("stimulus", "reference") and isinstance(v, str):
                out.append(v)
            else:
                out += _stimulus_paths(v)
    return out


class ListeningServer:
    """webMUSHRA + one pack on ``http://127.0.0.1:<port>/``, writing a study folder (see the module notes).

    >>> with ListeningServer("outputs/demo/07_listening", "study", webmushra_dir="webMUSHRA") as srv:  # doctest: +SKIP
    ...     print(srv.url)

    Args:
        pack: the pack folder (``pack/``) or the folder holding it and ``key.csv``.
        study_dir: the study folder to write (created; earlier sessions in it are kept).
        webmushra_dir: the webMUSHRA folder (default ``$ECHOSCRIPT_WEBMUSHRA``).
        key: the answer key (default ``key.csv`` beside ``pack/``); copied into the study, never served.
        port: TCP port on 127.0.0.1 (0: a free one).
        log: called with one line per event (default: print to stderr).
    """

    def __init__(self, pack: str | os.PathLike, study_dir: str | os.PathLike, *,
                 webmushra_dir: str | os.PathLike | None = None, key: str | os.PathLike | None = None,
                 port: int = 8000, host: str = "127.0.0.1", log=None):
        self.webmushra_dir = find_webmushra(webmushra_dir).resolve()
        self.pack_dir, self.key_path = (p.resolve() for p in _find_pack(pack, key))
        self.study_dir = Path(study_dir).resolve()
        self.raw_dir = self.study_dir / "webmushra" / "sessions"
        self.log = log or (lambda line: print(line, file=sys.stderr, flush=True))
        config_path = self.pack_dir / "webmushra.yaml"
        try:
            self.config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise InputError(f"{config_path}: unreadable webMUSHRA config ({exc}); rebuild the pack") from None
        self.config_name = config_path.name
        self.test_id = str(self.config.get("testId", ""))
        service = str(self.config.get("remoteService") or "service/write.php")
        self.service_path = "/" + service.lstrip("/")
        overlay = {f"/configs/{self.config_name}": config_path}
        for rel in _stimulus_paths(self.config.get("pages", [])):
            f = self.pack_dir / "audio" / posixpath.basename(rel)
            if not f.is_file():
                raise InputError(f"{config_path}: names {rel}, but the pack has no {f.name} in audio/; rebuild "
                                 f"the pack")
            overlay["/" + rel.lstrip("/")] = f
        self.overlay = overlay
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        handler = _handler(self)
        try:
            self.httpd = ThreadingHTTPServer((host, int(port)), handler)
        except OSError as exc:
            raise OutputError(f"cannot listen on {host}:{port} ({exc.strerror}); pass another --port "
                              f"(0 picks a free one)") from None
        self.httpd.daemon_threads = True
        try:
            ensure_dir(self.raw_dir)
        except OutputError:
            self.httpd.server_close()
            raise
        self.host, self.port = self.httpd.server_address[:2]

    @property
    def url(self) -> str:
        """The address a participant opens."""
        return f"http://{self.host}:{self.port}/index.html?config={urllib.parse.quote(self.config_name)}"

    @property
    def sessions(self) -> int:
        """Sessions received so far (each counted once)."""
        return len(self._session_files())

    def _session_files(self) -> list[Path]:
        return [f for f in self.raw_dir.glob("*.json") if not f.name.startswith(".")]

    # -- lifecycle
    def start(self) -> ListeningServer:
        """Serve in a background thread (returns at once)."""
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="listening-serve", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join()
            self._thread = None
        self.httpd.server_close()

    def __enter__(self) -> ListeningServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- submissions
    def receive(self, body: bytes) -> tuple[int, str]:
        """Handle one POST body; returns the HTTP status and the text to answer (empty: webMUSHRA's success)."""
        session = _parse_body(body)
        if session is None:
            return HTTPStatus.BAD_REQUEST, "expected sessionJSON=<webMUSHRA session JSON>"
        if str(session.get("testId", "")) != self.test_id:
            return HTTPStatus.BAD_REQUEST, (f"this server collects test {self.test_id!r}, "
                                            f"not {session.get('testId')!r}")
        uuid = str(session.get("uuid") or "")
        if not uuid or not all(c.isalnum() or c == "-" for c in uuid):
            uuid = "sha1-" + hashlib.sha1(body).hexdigest()
        with self._lock:
            target = self.raw_dir / f"{uuid}.json"
            if target.exists():
                self.log(f"session {uuid} sent again: already recorded, not counted twice")
                return HTTPStatus.OK, ""
            record = {"received": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "session": session}
            atomic_write_text(target, json.dumps(record, ensure_ascii=False, indent=1))
            try:
                self.rebuild()
            except InputError as exc:
                self.log(f"session {uuid} recorded, but the study tables were not rebuilt: {exc}")
                return HTTPStatus.OK, ""
        return HTTPStatus.OK, ""

    def _records(self) -> list[dict]:
        recs = []
        for f in self._session_files():
            try:
                recs.append(json.loads(f.read_text(encoding="utf-8")))
            except (OSError, json.JSONDecodeError) as exc:
                raise InputError(f"{f}: unreadable session file ({exc}); move it out of {self.raw_dir}") from None
        return sorted(recs, key=lambda r: (r.get("received", ""), str(r["session"].get("uuid", ""))))

    def rebuild(self):
        """Rewrite ``webmushra/lms.csv`` and the study tables from every recorded session; returns the
        :class:`~echoscript_utils.listening.webmushra.WebmushraImport`."""
        sessions = [r["session"] for r in self._records()]
        lms = atomic_write_text(self.study_dir / "webmushra" / "lms.csv", lms_text(sessions))
        found = read_webmushra(lms, self.key_path)
        found.write(self.study_dir)
        self.log(f"{len(sessions)} session(s) → {self.study_dir}: {found.summary()}")
        return found


def _parse_body(body: bytes) -> dict | None:
    text = body.decode("utf-8", errors="replace")
    prefix = "sessionJSON="
    candidates = []
    if text.startswith(prefix):
        candidates.append(text[len(prefix):])  # webMUSHRA: not URL-encoded
    with contextlib.suppress(ValueError):
        candidates += urllib.parse.parse_qs(text, strict_parsing=True).get("sessionJSON", [])
    for c in candidates:
        try:
            data = json.loads(c)
        except json.JSONDecodeError:
            continue
        if isinstance(data, dict):
            return data
    return None


def _handler(server: ListeningServer):
    class Handler(SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(server.webmushra_dir), **kwargs)

        def log_message(self, format, *args):  # noqa: A002 - the base class's name
            pass

        def end_headers(self):
            self.send_header("Cache-Control", "no-store")
            super().end_headers()

        def _route(self) -> str:
            return posixpath.normpath(urllib.parse.unquote(urllib.parse.urlsplit(self.path).path))

        def translate_path(self, path: str) -> str:
            route = self._route()
            if route in server.overlay:
                return str(server.overlay[route])
            return super().translate_path(path)

        def send_head(self):
            route = self._route()
            if route not in server.overlay and route.split("/")[1:2] in (["service"], ["results"]):
                self.send_error(HTTPStatus.NOT_FOUND)
                return None
            return super().send_head()

        def list_directory(self, path):
            self.send_error(HTTPStatus.NOT_FOUND)
            return None

        def do_POST(self):
            if self._route() != server.service_path:
                self.send_error(HTTPStatus.NOT_FOUND)
                return
            n = int(self.headers.get("Content-Length") or 0)
            if n <= 0 or n > _MAX_BODY:
                self.send_error(HTTPStatus.BAD_REQUEST, "no session in the request")
                return
            status, text = server.receive(self.rfile.read(n))
            data = text.encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


def serve(pack: str | os.PathLike, study_dir: str | os.PathLike, *, webmushra_dir=None, key=None,
          port: int = 8000, host: str = "127.0.0.1") -> int:
    """Run :class:`ListeningServer` until Ctrl-C; prints the address to open first. Returns the sessions count."""
    srv = ListeningServer(pack, study_dir, webmushra_dir=webmushra_dir, key=key, port=port, host=host)
    print(f"listening test: open {srv.url}", flush=True)
    print(f"results go to {srv.study_dir} (Ctrl-C stops the server)", flush=True)
    try:
        srv.httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        srv.httpd.server_close()
    n = srv.sessions
    print(f"stopped: {n} session(s) in {srv.study_dir}", flush=True)
    return n

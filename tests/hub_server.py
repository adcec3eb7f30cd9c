"""A tiny stand-in for the Hugging Face Hub on 127.0.0.1 (download side).

It answers the requests ``huggingface_hub`` makes to download files
(``HEAD/GET /{repo}/resolve/{rev}/{path}``) and to list a snapshot
(``GET /api/models/{repo}/revision/{rev}``), so the real client and cache code runs.
"""
from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote


class HubState:
    def __init__(self) -> None:
        self.repos: dict[str, dict[str, bytes]] = {}
        self.requests: list[tuple[str, str]] = []

    def commit(self, repo: str) -> str:
        digest = hashlib.sha1(repr(sorted((k, hashlib.sha1(v).hexdigest()) for k, v in self.repos[repo].items())).encode())
        return digest.hexdigest()


def _handler(state: HubState):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # keep test output clean
            pass

        def _not_found(self, code: str) -> None:
            body = json.dumps({"error": code}).encode()
            self.send_response(404)
            self.send_header("X-Error-Code", code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _route(self):
            path = unquote(self.path.split("?", 1)[0]).lstrip("/")
            state.requests.append((self.command, path))
            if path.startswith("api/models/"):
                parts = path[len("api/models/"):].split("/")
                kind = "tree" if len(parts) > 2 and parts[2] == "tree" else "api"
                return (kind, "/".join(parts[:2]), parts[3] if len(parts) > 3 else None, None)
            parts = path.split("/")
            if len(parts) >= 5 and parts[2] == "resolve":
                return ("file", f"{parts[0]}/{parts[1]}", parts[3], "/".join(parts[4:]))
            return (None, None, None, None)

        def _serve(self, head: bool) -> None:
            kind, repo, _rev, fname = self._route()
            if repo not in state.repos:
                return self._not_found("RepoNotFound")
            files = state.repos[repo]
            if kind == "tree":
                body = json.dumps([{"type": "file", "path": f, "size": len(v), "oid": hashlib.sha1(v).hexdigest()}
                                   for f, v in sorted(files.items())]).encode()
                ctype = "application/json"
            elif kind == "api":
                body = json.dumps({"id": repo, "sha": state.commit(repo),
                                   "siblings": [{"rfilename": f} for f in sorted(files)]}).encode()
                ctype = "application/json"
            elif kind == "file" and fname in files:
                body, ctype = files[fname], "application/octet-stream"
            else:
                return self._not_found("EntryNotFound")
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Repo-Commit", state.commit(repo))
            self.send_header("ETag", '"' + hashlib.sha256(body).hexdigest() + '"')
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def do_HEAD(self) -> None:  # noqa: N802
            self._serve(head=True)

        def do_GET(self) -> None:  # noqa: N802
            self._serve(head=False)

    return Handler


class HubServer:
    """Context manager: ``with HubServer() as hub: hub.state.repos[...] = {...}; hub.url``."""

    def __init__(self) -> None:
        self.state = HubState()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.state))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> "HubServer":
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

"""A tiny stand-in for the Hugging Face Hub on 127.0.0.1 (downloads and uploads).

Download side: ``HEAD/GET /{repo}/resolve/{rev}/{path}``, ``GET /api/models/{repo}[/revision/{rev}]``
and ``GET /api/models/{repo}/tree/{rev}``, so the real ``huggingface_hub`` client and cache code runs.

Upload side, the few endpoints ``HfApi.create_repo``, ``create_branch`` and ``create_commit`` use:
``POST /api/repos/create``, ``POST /api/models/{repo}/branch/{branch}``, ``POST /api/validate-yaml``
(README.md front matter), ``POST /api/models/{repo}/preupload/{rev}`` (answers ``regular`` for every
file, so no LFS/Xet transfer is involved) and ``POST /api/models/{repo}/commit/{rev}`` (NDJSON with
base64 file contents). Uploads need an ``Authorization: Bearer`` header.

``state.repos[repo]`` is the ``main`` branch (``{path: bytes}``); other branches live in
``state.branches[repo][branch]``.
"""
from __future__ import annotations

import base64
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote


class HubState:
    def __init__(self) -> None:
        self.repos: dict[str, dict[str, bytes]] = {}
        self.branches: dict[str, dict[str, dict[str, bytes]]] = {}
        self.private: dict[str, bool] = {}
        self.commits: list[dict] = []  # {"repo", "revision", "summary", "files", "oid"}
        self.tokens: list[str | None] = []  # the bearer token of every upload request
        self.valid_tokens: set[str] | None = None  # None: any token may write
        self.requests: list[tuple[str, str]] = []

    @staticmethod
    def digest(files: dict[str, bytes]) -> str:
        return hashlib.sha1(repr(sorted((k, hashlib.sha1(v).hexdigest()) for k, v in files.items())).encode()).hexdigest()

    def commit(self, repo: str) -> str:
        return self.digest(self.repos[repo])

    def files_at(self, repo: str, rev: str | None) -> dict[str, bytes] | None:
        """The files of ``repo`` at a branch name or commit id (None: unknown revision)."""
        if rev in (None, "main"):
            return self.repos[repo]
        branches = self.branches.get(repo, {})
        if rev in branches:
            return branches[rev]
        for files in (self.repos[repo], *branches.values()):
            if self.digest(files) == rev:
                return files
        return None


def _handler(state: HubState):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # keep test output clean
            pass

        # ------------------------------------------------------------ replies
        def _json(self, status: int, doc, headers: dict[str, str] | None = None) -> None:
            body = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _error(self, status: int, code: str, message: str = "") -> None:
            self._json(status, {"error": message or code}, {"X-Error-Code": code, "X-Error-Message": message or code})

        def _not_found(self, code: str) -> None:
            self._error(404, code)

        # ------------------------------------------------------------ downloads
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
            kind, repo, rev, fname = self._route()
            if repo not in state.repos:
                return self._not_found("RepoNotFound")
            files = state.files_at(repo, rev)
            if files is None:
                return self._not_found("RevisionNotFound")
            sha = state.digest(files)
            if kind == "tree":
                body = json.dumps([{"type": "file", "path": f, "size": len(v), "oid": hashlib.sha1(v).hexdigest()}
                                   for f, v in sorted(files.items())]).encode()
                ctype = "application/json"
            elif kind == "api":
                body = json.dumps({"id": repo, "sha": sha, "private": state.private.get(repo, False),
                                   "siblings": [{"rfilename": f} for f in sorted(files)]}).encode()
                ctype = "application/json"
            elif kind == "file" and fname in files:
                body, ctype = files[fname], "application/octet-stream"
            else:
                return self._not_found("EntryNotFound")
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Repo-Commit", sha)
            self.send_header("ETag", '"' + hashlib.sha256(body).hexdigest() + '"')
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def do_HEAD(self) -> None:  # noqa: N802
            self._serve(head=True)

        def do_GET(self) -> None:  # noqa: N802
            self._serve(head=False)

        # ------------------------------------------------------------ uploads
        def _body(self) -> bytes:
            n = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(n) if n else b""

        def _token(self) -> str | None:
            auth = self.headers.get("Authorization") or ""
            return auth[len("Bearer "):] if auth.startswith("Bearer ") else None

        def do_POST(self) -> None:  # noqa: N802
            path = unquote(self.path.split("?", 1)[0]).lstrip("/")
            state.requests.append(("POST", path))
            body = self._body()
            if path == "api/validate-yaml":
                return self._json(200, {"errors": [], "warnings": []})
            token = self._token()
            state.tokens.append(token)
            if not token or (state.valid_tokens is not None and token not in state.valid_tokens):
                return self._error(401, "Unauthorized", "Invalid credentials in Authorization header")
            if path == "api/repos/create":
                doc = json.loads(body or b"{}")
                repo = f"{doc.get('organization')}/{doc['name']}"
                if repo in state.repos:
                    return self._error(409, "RepoExists", "You already created this model repo")
                state.repos[repo] = {".gitattributes": b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"}
                state.private[repo] = doc.get("visibility") == "private" or bool(doc.get("private"))
                return self._json(200, {"url": f"http://{self.headers.get('Host')}/{repo}", "name": repo})
            if not path.startswith("api/models/"):
                return self._not_found("EntryNotFound")
            parts = path[len("api/models/"):].split("/")
            repo, action, rev = "/".join(parts[:2]), parts[2] if len(parts) > 2 else "", "/".join(parts[3:])
            if repo not in state.repos:
                return self._not_found("RepoNotFound")
            if action == "branch":
                branches = state.branches.setdefault(repo, {})
                if rev in branches or rev == "main":
                    return self._error(409, "BranchExists", "Reference already exists")
                start = json.loads(body or b"{}").get("startingPoint")
                base = state.files_at(repo, start) if start else state.repos[repo]
                branches[rev] = dict(base or {})
                return self._json(200, {})
            files = state.files_at(repo, rev or "main")
            if files is None:
                return self._not_found("RevisionNotFound")
            if action == "preupload":
                doc = json.loads(body)
                return self._json(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
                                                   "oid": None} for f in doc["files"]]})
            if action == "commit":
                return self._commit(repo, rev or "main", files, body)
            return self._not_found("EntryNotFound")

        def _commit(self, repo: str, rev: str, files: dict[str, bytes], body: bytes) -> None:
            summary, added = "", {}
            for line in body.decode().splitlines():
                if not line.strip():
                    continue
                item = json.loads(line)
                if item["key"] == "header":
                    summary = item["value"]["summary"]
                elif item["key"] == "file" and item["value"].get("encoding") == "base64":
                    added[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                elif item["key"] == "deletedFile":
                    files.pop(item["value"]["path"], None)
                else:  # lfsFile etc.: this stand-in only takes inline (regular) uploads
                    return self._error(400, "BadRequest", f"unsupported commit operation {item['key']}")
            files.update(added)
            oid = state.digest(files)
            state.commits.append({"repo": repo, "revision": rev, "summary": summary, "files": sorted(added), "oid": oid})
            host = self.headers.get("Host")
            return self._json(200, {"success": True, "commitOid": oid, "commitUrl": f"http://{host}/{repo}/commit/{oid}",
                                    "pullRequestUrl": None})

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

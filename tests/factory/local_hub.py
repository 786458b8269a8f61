"""A local stand-in for the Hugging Face Hub's HTTP API, enough for `Dataset.push_to_hub` and `HfApi.create_commit`.

The real Hub cannot be reached from the test machines, so the push path runs against this: repo creation, repo and
tree listings, paths-info, file downloads, YAML validation, preupload, the Git LFS batch API with basic uploads, and
NDJSON commits (regular files, LFS files, deletions). It keeps the files in memory, records every request with its
headers, and refuses a request without `Authorization: Bearer <token>`. Xet uploads are not emulated: the client
must run with HF_HUB_DISABLE_XET=1.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_REPO = r"/api/datasets/([\w.-]+/[\w.-]+)"
_SHA = "a" * 40


class LocalHub:
    def __init__(self, token: str):
        self.token = token
        self.files: dict[str, bytes] = {}  # path in repo -> bytes, one dataset repo
        self.repos: dict[str, dict] = {}  # repo id -> {"private": bool}
        self.requests: list[tuple[str, str, dict]] = []  # (method, path, headers)
        self.commits: list[str] = []  # commit messages, in order
        self._blobs: dict[str, bytes] = {}
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_any(self):
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                hub.requests.append((self.command, self.path, headers))
                if self.path.startswith("/lfs-upload/") or headers.get("authorization") == f"Bearer {hub.token}":
                    path, _, query = self.path.partition("?")
                    code, payload, extra = hub.answer(self.command, path, query, body)
                else:
                    code, payload, extra = 401, {"error": "Invalid credentials"}, {}
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for k, v in extra.items():
                    self.send_header(k, v)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = do_any

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def __enter__(self) -> LocalHub:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()

    def answer(self, method: str, path: str, query: str, body: bytes) -> tuple[int, object, dict]:
        missing = (404, {"error": "Entry not found"}, {"x-error-code": "EntryNotFound"})
        if path == "/api/repos/create":
            req = json.loads(body)
            repo = f"{req.get('organization') or 'me'}/{req['name']}"
            self.repos.setdefault(repo, {"private": req.get("visibility") == "private" or bool(req.get("private"))})
            return 200, {"url": f"{self.url}/datasets/{repo}"}, {}
        if path == "/api/validate-yaml":
            return 200, {"errors": [], "warnings": []}, {}
        if m := re.fullmatch(r"/datasets/([\w.-]+/[\w.-]+)\.git/info/lfs/objects/batch", path):
            objects = json.loads(body)["objects"]
            upload = f"{self.url}/lfs-upload/"
            actions = [{"oid": o["oid"], "size": o["size"], "authenticated": True,
                        "actions": {"upload": {"href": upload + o["oid"]}}} for o in objects]  # fmt: skip
            return 200, {"transfer": "basic", "objects": actions}, {}
        if m := re.fullmatch(r"/lfs-upload/(\w+)", path):
            self._blobs[m[1]] = body
            return 200, {}, {}
        if m := re.fullmatch(rf"{_REPO}(?:/revision/[\w.-]+)?", path):
            if m[1] not in self.repos:
                return 404, {"error": "Repository not found"}, {"x-error-code": "RepoNotFound"}
            siblings = [{"rfilename": f} for f in sorted(self.files)]
            return 200, {"id": m[1], "sha": _SHA, "private": self.repos[m[1]]["private"], "siblings": siblings}, {}
        if m := re.fullmatch(rf"{_REPO}/preupload/[\w.-]+", path):
            files = json.loads(body)["files"]
            modes = [{"path": f["path"], "shouldIgnore": False,
                      "uploadMode": "lfs" if f["path"].endswith(".parquet") else "regular"} for f in files]  # fmt: skip
            return 200, {"files": modes}, {}
        if m := re.fullmatch(rf"{_REPO}/commit/[\w.-]+", path):
            ops = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
            for op in ops:
                value = op["value"]
                if op["key"] == "header":
                    self.commits.append(value["summary"])
                elif op["key"] == "file":
                    self.files[value["path"]] = base64.b64decode(value["content"])
                elif op["key"] == "lfsFile":
                    self.files[value["path"]] = self._blobs[value["oid"]]
                elif op["key"] in ("deletedFile", "deletedFolder"):
                    gone = [
                        f for f in self.files if f == value["path"] or f.startswith(value["path"].rstrip("/") + "/")
                    ]
                    for f in gone:
                        del self.files[f]
            return 200, {"commitUrl": f"{self.url}/datasets/{m[1]}/commit/{_SHA}", "commitOid": _SHA}, {}
        if m := re.fullmatch(rf"{_REPO}/tree/[\w.-]+/?(.*)", path):
            prefix = m[2].strip("/")
            base = prefix + "/" if prefix else ""
            under = [f[len(base) :] for f in sorted(self.files) if f.startswith(base)]
            if prefix and not under:
                return missing
            deep = "recursive=true" in query.lower()
            entries = [{"type": "file", "path": base + f, "size": len(self.files[base + f]), "oid": "b" * 40}
                       for f in under if deep or "/" not in f]  # fmt: skip
            folders = sorted({f.split("/", 1)[0] for f in under if "/" in f})
            entries += [{"type": "directory", "path": base + d, "oid": "c" * 40} for d in folders]
            return 200, entries, {}
        if m := re.fullmatch(rf"{_REPO}/paths-info/[\w.-]+", path):
            asked = json.loads(body)["paths"] if body.startswith(b"{") else re.findall(r"paths=([^&]+)", body.decode())
            found = [{"type": "file", "path": p, "size": len(self.files[p]), "oid": "b" * 40}
                     for p in asked if p in self.files]  # fmt: skip
            return 200, found, {}
        if m := re.fullmatch(r"/datasets/([\w.-]+/[\w.-]+)/resolve/[\w.-]+/(.+)", path):
            if m[2] not in self.files:
                return missing
            return 200, self.files[m[2]], {"x-repo-commit": _SHA, "etag": '"e"'}
        return missing

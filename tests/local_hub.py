"""A minimal Hugging Face Hub served on 127.0.0.1, for tests that must not touch the internet.

It implements just the HTTP endpoints ``huggingface_hub`` (2.x) calls to download files
(``hf_hub_download``: a HEAD then a GET on ``/{repo}/resolve/{revision}/{file}``) and to
upload a folder (``create_repo``, ``validate-yaml`` for a README's metadata, ``preupload``, ``commit``;
plus ``model_info`` which a push of unchanged files falls back to). Repos live in memory as a list of commits.

What the real Hub does and this one does not:

* ``preupload`` answers ``"regular"`` for every file, so even ``*.safetensors`` files are
  committed inline (base64 in the NDJSON commit body). On huggingface.co such files are
  "lfs" and the client sends them to Xet / LFS storage first; those storage services are
  out of scope here. The commit endpoint rejects ``lfsFile`` lines with a 400.
* No authentication, no pull requests, no branches besides ``main`` (commit hashes work
  as revisions), model repos only.

Every request is appended to :attr:`LocalHub.requests` so tests can assert that a real
HEAD/GET happened (or that none did, offline).
"""
from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Mapping
from urllib.parse import unquote, urlsplit

__all__ = ["LocalHub", "HubRequest", "git_blob_sha1"]

MAIN = "main"


def git_blob_sha1(content: bytes) -> str:
    """The git object id of a file, which the Hub uses as the ETag of regular files."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


@dataclass(frozen=True)
class HubRequest:
    """One request the hub answered."""

    method: str
    path: str
    status: int


@dataclass(frozen=True)
class Commit:
    oid: str
    message: str
    files: Mapping[str, bytes]


@dataclass
class Repo:
    repo_id: str
    commits: list[Commit] = field(default_factory=list)

    @property
    def head(self) -> Commit:
        return self.commits[-1]

    def resolve(self, revision: str) -> Commit | None:
        if revision == MAIN:
            return self.head
        for commit in self.commits:
            if commit.oid == revision:
                return commit
        return None


class HubError(Exception):
    """An error answer: status, ``X-Error-Code`` and message."""

    def __init__(self, status: int, code: str | None, message: str, headers: Mapping[str, str] | None = None,
                 body: Mapping[str, object] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})
        self.body = {"error": message, **(body or {})}


class LocalHub:
    """An in-memory Hub on ``http://127.0.0.1:<port>``; use as a context manager or start()/stop()."""

    def __init__(self) -> None:
        self._repos: dict[str, Repo] = {}
        self._lock = threading.Lock()
        self.requests: list[HubRequest] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        # set to a token to make writes (create repo, commit) answer 401 without it, as the Hub does
        self.write_token: str | None = None

    # ------------------------------------------------------------ lifecycle
    @property
    def endpoint(self) -> str:
        if self._server is None:
            raise RuntimeError("LocalHub is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "LocalHub":
        handler = type("BoundHubHandler", (_HubHandler,), {"hub": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="local-hub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> "LocalHub":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ---------------------------------------------------------- repo access
    def add_repo(self, repo_id: str, files: Mapping[str, bytes], message: str = "Initial commit") -> str:
        """Create (or add a commit to) ``repo_id`` holding exactly ``files``; return the commit id."""
        with self._lock:
            repo = self._repos.setdefault(repo_id, Repo(repo_id))
            return self._commit(repo, dict(files), message).oid

    def has_repo(self, repo_id: str) -> bool:
        with self._lock:
            return repo_id in self._repos

    def files(self, repo_id: str, revision: str = MAIN) -> dict[str, bytes]:
        """The files of ``repo_id`` at ``revision`` (KeyError if absent)."""
        with self._lock:
            commit = self._repos[repo_id].resolve(revision)
            if commit is None:
                raise KeyError(revision)
            return dict(commit.files)

    def head(self, repo_id: str) -> str:
        with self._lock:
            return self._repos[repo_id].head.oid

    def requests_to(self, path_suffix: str, method: str | None = None) -> list[HubRequest]:
        """Logged requests whose path ends with ``path_suffix`` (and of ``method``, if given)."""
        with self._lock:
            return [
                r for r in self.requests
                if r.path.endswith(path_suffix) and (method is None or r.method == method)
            ]

    def clear_log(self) -> None:
        with self._lock:
            self.requests.clear()

    def _log(self, method: str, path: str, status: int) -> None:
        with self._lock:
            self.requests.append(HubRequest(method, path, status))

    @staticmethod
    def _commit(repo: Repo, files: dict[str, bytes], message: str) -> Commit:
        parent = repo.commits[-1].oid if repo.commits else ""
        digest = hashlib.sha1(f"parent {parent}\n{message}\n".encode())
        for path in sorted(files):
            digest.update(f"{path}\0{git_blob_sha1(files[path])}\n".encode())
        commit = Commit(oid=digest.hexdigest(), message=message, files=files)
        repo.commits.append(commit)
        return commit

    # ------------------------------------------------------------ endpoints
    def _repo(self, repo_id: str) -> Repo:
        repo = self._repos.get(repo_id)
        if repo is None:
            raise HubError(404, "RepoNotFound", f"Repository not found: {repo_id}")
        return repo

    def _revision(self, repo: Repo, revision: str) -> Commit:
        commit = repo.resolve(revision)
        if commit is None:
            raise HubError(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        return commit

    def resolve_file(self, repo_id: str, revision: str, filename: str) -> tuple[Commit, bytes]:
        with self._lock:
            commit = self._revision(self._repo(repo_id), revision)
            if filename not in commit.files:
                raise HubError(
                    404, "EntryNotFound", f"Entry not found: {filename}",
                    headers={"X-Repo-Commit": commit.oid},
                )
            return commit, commit.files[filename]

    def create_repo(self, payload: Mapping[str, object], endpoint: str) -> dict[str, object]:
        if payload.get("type") not in (None, "model"):
            raise HubError(400, None, "LocalHub serves model repos only")
        name = str(payload["name"])
        organization = payload.get("organization")
        repo_id = f"{organization}/{name}" if organization else name
        with self._lock:
            if repo_id in self._repos:
                # like huggingface.co: create_repo(exist_ok=True) reads the url from the 409 answer
                raise HubError(409, None, "You already created this model repo",
                               body={"url": f"{endpoint}/{repo_id}"})
            repo = self._repos[repo_id] = Repo(repo_id)
            self._commit(repo, {".gitattributes": b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"}, "initial commit")
        return {"url": f"{endpoint}/{repo_id}", "name": repo_id}

    def preupload(self, repo_id: str, revision: str, payload: Mapping[str, object]) -> dict[str, object]:
        with self._lock:
            commit = self._revision(self._repo(repo_id), revision)
            answers = []
            for entry in payload.get("files", []):  # type: ignore[union-attr]
                path = entry["path"]
                existing = commit.files.get(path)
                answers.append({
                    "path": path,
                    "uploadMode": "regular",
                    "shouldIgnore": False,
                    "oid": git_blob_sha1(existing) if existing is not None else None,
                })
            return {"files": answers, "commitOid": commit.oid}

    def commit(self, repo_id: str, revision: str, ndjson: bytes, endpoint: str) -> dict[str, object]:
        lines = [json.loads(line) for line in ndjson.splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, None, "commit payload must start with a header line")
        header = lines[0]["value"]
        with self._lock:
            repo = self._repo(repo_id)
            base = self._revision(repo, revision)
            if revision != MAIN:
                raise HubError(400, None, "LocalHub commits to main only")
            parent = header.get("parentCommit")
            if parent is not None and parent != base.oid:
                raise HubError(412, None, f"parentCommit {parent} is not the head {base.oid}")
            files = dict(base.files)
            for line in lines[1:]:
                key, value = line["key"], line["value"]
                if key == "file":
                    if value.get("encoding") != "base64":
                        raise HubError(400, None, f"unsupported encoding {value.get('encoding')!r}")
                    files[value["path"]] = base64.b64decode(value["content"])
                elif key == "deletedFile":
                    files.pop(value["path"], None)
                elif key == "deletedFolder":
                    prefix = value["path"].rstrip("/") + "/"
                    files = {p: c for p, c in files.items() if not p.startswith(prefix)}
                else:  # lfsFile etc.: preupload never asks for them
                    raise HubError(400, None, f"LocalHub does not accept {key!r} operations")
            summary = header.get("summary", "")
            description = header.get("description", "")
            commit = self._commit(repo, files, f"{summary}\n\n{description}".strip())
        return {
            "commitUrl": f"{endpoint}/{repo_id}/commit/{commit.oid}",
            "commitOid": commit.oid,
            "pullRequestUrl": None,
            "success": True,
        }

    @staticmethod
    def validate_card(payload: Mapping[str, object]) -> dict[str, object]:
        """Check a README's YAML metadata roughly as huggingface.co does (``upload_folder`` asks first)."""
        import yaml

        content = str(payload.get("content", ""))
        match = re.match(r"^---\s*\n(.*?)\n---\s*(\n|$)", content, re.DOTALL)
        if match is None:
            return {"errors": [], "warnings": [{"message": "empty or missing yaml metadata in repo card"}]}
        try:
            metadata = yaml.safe_load(match.group(1))
        except yaml.YAMLError as err:
            raise HubError(400, None, "Invalid metadata", body={"errors": [{"message": f"invalid YAML: {err}"}]})
        errors = []
        if not isinstance(metadata, dict):
            errors.append("metadata must be a YAML mapping")
        else:
            tags = metadata.get("tags", [])
            if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
                errors.append('"tags" must be a list of strings')
            for key in ("library_name", "license", "pipeline_tag"):
                if key in metadata and not isinstance(metadata[key], str):
                    errors.append(f'"{key}" must be a string')
            bases = metadata.get("base_model", [])
            for base in bases if isinstance(bases, list) else [bases]:
                if not isinstance(base, str) or not re.fullmatch(r"[\w.\-]+/[\w.\-]+", base):
                    errors.append(f'"base_model" must be a model repo id, got {base!r}')
            errors += LocalHub._model_index_errors(metadata.get("model-index"))
        if errors:
            raise HubError(400, None, "Invalid metadata", body={"errors": [{"message": e} for e in errors]})
        return {"errors": [], "warnings": []}

    @staticmethod
    def _model_index_errors(index: object) -> list[str]:
        """The structure huggingface.co requires of ``model-index`` (results with a task type,
        a dataset name and type, and numeric metric values)."""
        if index is None:
            return []
        if not isinstance(index, list) or not all(isinstance(m, dict) and isinstance(m.get("name"), str) for m in index):
            return ['"model-index" must be a list of {name, results}']
        errors = []
        for result in (r for m in index for r in m.get("results") or []):
            task, dataset, metrics = result.get("task", {}), result.get("dataset", {}), result.get("metrics")
            if not isinstance(task.get("type"), str):
                errors.append('"model-index" result without task.type')
            if not (isinstance(dataset.get("name"), str) and isinstance(dataset.get("type"), str)):
                errors.append('"model-index" result without dataset.name and dataset.type')
            if not metrics or not all(isinstance(x.get("type"), str) and isinstance(x.get("value"), (int, float))
                                      and x["value"] == x["value"] for x in metrics):
                errors.append('"model-index" metrics need a type and a numeric value')
        return errors

    def model_info(self, repo_id: str, revision: str) -> dict[str, object]:
        with self._lock:
            commit = self._revision(self._repo(repo_id), revision)
            return {
                "id": repo_id,
                "modelId": repo_id,
                "sha": commit.oid,
                "private": False,
                "tags": [],
                "siblings": [
                    {"rfilename": p, "size": len(c), "blobId": git_blob_sha1(c)}
                    for p, c in sorted(commit.files.items())
                ],
            }


class _HubHandler(BaseHTTPRequestHandler):
    """Routes requests to :class:`LocalHub` (bound as the class attribute ``hub``)."""

    hub: LocalHub
    protocol_version = "HTTP/1.1"
    server_version = "LocalHub/1"

    def log_message(self, format: str, *args: object) -> None:  # quiet test output
        pass

    # -------------------------------------------------------------- helpers
    @property
    def _endpoint(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def _path(self) -> str:
        return urlsplit(self.path).path

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes = b"", headers: Mapping[str, str] | None = None,
              content_type: str = "application/json", send_body: bool = True,
              content_length: int | None = None) -> None:
        self.hub._log(self.command, self._path(), status)  # before answering: the client may look at once
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body) if content_length is None else content_length))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if send_body and body:
            self.wfile.write(body)

    def _send_json(self, payload: object, status: int = 200) -> None:
        self._send(status, json.dumps(payload).encode())

    def _send_error(self, err: HubError, send_body: bool = True) -> None:
        headers = dict(err.headers)
        if err.code:
            headers["X-Error-Code"] = err.code
        headers["X-Error-Message"] = err.message
        self._send(err.status, json.dumps(err.body).encode(), headers=headers, send_body=send_body)

    # --------------------------------------------------------------- routes
    def _serve_file(self, send_body: bool) -> None:
        path = self._path()
        repo_id, _, rest = path.lstrip("/").partition("/resolve/")
        revision, _, filename = rest.partition("/")
        if not rest or not filename:
            self._send_error(HubError(404, None, f"Not found: {path}"), send_body)
            return
        try:
            commit, content = self.hub.resolve_file(unquote(repo_id), unquote(revision), unquote(filename))
        except HubError as err:
            self._send_error(err, send_body)
            return
        etag = git_blob_sha1(content)
        headers = {"X-Repo-Commit": commit.oid, "ETag": f'"{etag}"', "Accept-Ranges": "none"}
        self._send(200, content, headers=headers, content_type="application/octet-stream",
                   send_body=send_body, content_length=len(content))

    def do_HEAD(self) -> None:  # noqa: N802 (http.server naming)
        self._serve_file(send_body=False)

    def do_GET(self) -> None:  # noqa: N802
        path = self._path()
        if path.startswith("/api/models/"):
            rest = path[len("/api/models/"):]
            repo_id, _, revision = rest.partition("/revision/")
            try:
                self._send_json(self.hub.model_info(unquote(repo_id), unquote(revision) or MAIN))
            except HubError as err:
                self._send_error(err)
            return
        self._serve_file(send_body=True)

    def do_POST(self) -> None:  # noqa: N802
        path = self._path()
        body = self._body()
        try:
            token = self.hub.write_token
            if token is not None and path != "/api/validate-yaml" and self.headers.get("Authorization") != f"Bearer {token}":
                raise HubError(401, None, "Invalid credentials in Authorization header")
            if path == "/api/repos/create":
                self._send_json(self.hub.create_repo(json.loads(body), self._endpoint))
                return
            if path == "/api/validate-yaml":
                self._send_json(self.hub.validate_card(json.loads(body)))
                return
            if path.startswith("/api/models/"):
                rest = path[len("/api/models/"):]
                for action in ("preupload", "commit"):
                    repo_id, sep, revision = rest.partition(f"/{action}/")
                    if sep:
                        repo_id, revision = unquote(repo_id), unquote(revision)
                        if action == "preupload":
                            self._send_json(self.hub.preupload(repo_id, revision, json.loads(body)))
                        else:
                            self._send_json(self.hub.commit(repo_id, revision, body, self._endpoint))
                        return
            raise HubError(404, None, f"LocalHub has no endpoint POST {path}")
        except HubError as err:
            self._send_error(err)

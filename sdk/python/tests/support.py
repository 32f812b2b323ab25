"""Fixtures: the real `rollwatch serve` on a free port with a temp data dir, and a small HTTP
stub that can stand in front of it."""

import gzip
import http.client
import http.server
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

SDK_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if SDK_DIR not in sys.path:
    sys.path.insert(0, SDK_DIR)

ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "correct-horse-battery-staple"
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def rollwatch_bin():
    path = os.environ.get("ROLLWATCH_BIN")
    if not path:
        raise RuntimeError(
            "ROLLWATCH_BIN is not set: build the server with `cargo build -p rollwatch` and set "
            "ROLLWATCH_BIN to the `rollwatch` binary (cargo xtask test does this)"
        )
    if not os.access(path, os.X_OK):
        raise RuntimeError("ROLLWATCH_BIN=%s is not an executable file" % path)
    return path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout=10.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


class Server:
    """`rollwatch serve` on SQLite in a temp data dir; stop() and start() keep dir and port."""

    def __init__(self, **extra_env):
        self.bin = rollwatch_bin()
        self.data_dir = tempfile.mkdtemp(prefix="rollwatch-sdk-test-")
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.env = dict(os.environ)
        for name in ("DATABASE_URL", "STORAGE_DRIVER", "REDIS_URL", "METRICS_ADDR", "JWT_SECRET"):
            self.env.pop(name, None)
        self.env.update(
            {
                "ROLLWATCH_DATA_DIR": self.data_dir,
                "BIND_ADDR": "127.0.0.1:%d" % self.port,
                "ROLLWATCH_ADMIN_EMAIL": ADMIN_EMAIL,
                "ROLLWATCH_ADMIN_PASSWORD": ADMIN_PASSWORD,
                "REPORTS_RATE_LIMIT_PER_KEY_PER_MINUTE": "100000",
                "REPORTS_RATE_LIMIT_PER_DEVICE_PER_MINUTE": "100000",
                "RUST_LOG": "warn",
            }
        )
        self.env.update(extra_env)
        self.proc = None
        self._log = open(os.path.join(self.data_dir, "server.log"), "ab")

    def start(self):
        self.proc = subprocess.Popen(
            [self.bin, "serve"], env=self.env, stdout=self._log, stderr=self._log
        )
        up = wait_for(self._healthy, timeout=30)
        if not up:
            self.stop()
            with open(os.path.join(self.data_dir, "server.log"), "rb") as f:
                raise RuntimeError("rollwatch serve did not come up:\n" + f.read().decode()[-2000:])
        return self

    def _healthy(self):
        if self.proc.poll() is not None:
            raise RuntimeError("rollwatch serve exited with %s" % self.proc.returncode)
        try:
            with NO_PROXY.open(self.url + "/healthz", timeout=1) as r:
                return r.status == 200
        except Exception:
            return False

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def close(self):
        self.stop()
        self._log.close()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def create_app(self, name):
        out = subprocess.run(
            [self.bin, "apps", "create", name],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            check=True,
            timeout=30,
        )
        key = out.stdout.decode().strip()
        assert key.startswith("rpk_"), key
        return key

    # --- reading what the server stored -------------------------------------------------

    def query(self, sql, args=()):
        db = sqlite3.connect("file:%s?mode=ro" % os.path.join(self.data_dir, "rollwatch.db"), uri=True)
        try:
            return db.execute(sql, args).fetchall()
        finally:
            db.close()

    def groups(self, app):
        """{(event_type, reason): count} of an app."""
        rows = self.query(
            "SELECT g.event_type, g.reason, g.count FROM report_groups g "
            "JOIN apps a ON a.id = g.app_id WHERE a.name = ?",
            (app,),
        )
        return {(t, r): c for t, r, c in rows}

    def group_rows(self, app):
        return self.query(
            "SELECT g.version, g.channel, g.platform, g.arch, g.event_type, g.reason, g.count "
            "FROM report_groups g JOIN apps a ON a.id = g.app_id WHERE a.name = ?",
            (app,),
        )

    def usage(self, app):
        rows = self.query(
            "SELECT u.kind, SUM(u.count) FROM usage_counts u JOIN apps a ON a.id = u.app_id "
            "WHERE a.name = ? GROUP BY u.kind",
            (app,),
        )
        return dict(rows)

    def app_id(self, app):
        return self.query("SELECT id FROM apps WHERE name = ?", (app,))[0][0]

    def blobs(self, app):
        """The gunzipped text of every details blob of the app."""
        root = os.path.join(self.data_dir, "blobs")
        app_id = str(self.app_id(app))
        out = []
        for folder, _, names in os.walk(root):
            if app_id not in folder.split(os.sep):
                continue
            for name in names:
                if name.endswith(".gz"):
                    with open(os.path.join(folder, name), "rb") as f:
                        out.append(gzip.decompress(f.read()).decode("utf-8", "replace"))
        return out

    def graphql(self, query, variables=None, token=None):
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = "Bearer " + token
        req = urllib.request.Request(
            self.url + "/graphql",
            data=json.dumps({"query": query, "variables": variables or {}}).encode(),
            headers=headers,
            method="POST",
        )
        with NO_PROXY.open(req, timeout=10) as r:
            return json.loads(r.read().decode())

    def login(self):
        answer = self.graphql(
            "mutation($e:String!,$p:String!){login(email:$e,password:$p){token}}",
            {"e": ADMIN_EMAIL, "p": ADMIN_PASSWORD},
        )
        return answer["data"]["login"]["token"]

    def post(self, path, body, key, headers=None):
        h = {"Authorization": "Bearer " + key, "Content-Type": "application/json"}
        h.update(headers or {})
        req = urllib.request.Request(self.url + path, data=json.dumps(body).encode(), headers=h, method="POST")
        try:
            with NO_PROXY.open(req, timeout=10) as r:
                return r.status, json.loads(r.read().decode())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read().decode() or "null")


class Stub:
    """An HTTP server that records every request and, per request number, either forwards it
    to `upstream`, forwards it and hangs up without the answer ("drop"), or answers itself
    with (status, headers, body)."""

    def __init__(self, upstream=None, plan=None):
        self.upstream = upstream
        self.plan = plan or (lambda n, path, body: "forward")
        self.requests = []
        self.lock = threading.Lock()
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with stub.lock:
                    n = len(stub.requests)
                    stub.requests.append(
                        {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": json.loads(body.decode()), "at": time.monotonic()}
                    )
                action = stub.plan(n, self.path, stub.requests[n]["body"])
                if action in ("forward", "drop"):
                    status, headers, data = stub._forward(self.command, self.path, self.headers, body)
                    if action == "drop":
                        self.close_connection = True
                        self.connection.shutdown(socket.SHUT_RDWR)
                        return
                else:
                    status, headers, data = action
                    data = data if isinstance(data, bytes) else json.dumps(data).encode()
                self.send_response(status)
                for k, v in headers.items():
                    if k.lower() not in ("content-length", "transfer-encoding", "connection", "date", "server"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _forward(self, method, path, headers, body):
        host, port = self.upstream.replace("http://", "").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        try:
            skip = ("host", "content-length", "connection")
            conn.request(method, path, body, {k: v for k, v in headers.items() if k.lower() not in skip})
            r = conn.getresponse()
            return r.status, dict(r.getheaders()), r.read()
        finally:
            conn.close()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

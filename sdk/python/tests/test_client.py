"""End to end: the Python client against the real `rollwatch serve`."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest
import uuid

from tests import support
from tests.support import Server, Stub, wait_for

import rollwatch

SERVER = None
FAST = dict(backoff_initial=0.05, backoff_max=0.5, request_timeout=3.0, poll_interval=0.2)


def setUpModule():
    global SERVER
    SERVER = Server().start()


def tearDownModule():
    if SERVER is not None:
        SERVER.close()


class Base(unittest.TestCase):
    server = None

    def setUp(self):
        self.srv = self.server or SERVER
        self.app = "editor-" + uuid.uuid4().hex[:8]
        self.key = self.srv.create_app(self.app)
        self.dir = tempfile.mkdtemp(prefix="rollwatch-queue-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.clients = []

    def tearDown(self):
        for c in self.clients:
            c.close(timeout=0.5)

    def client(self, endpoint=None, **kw):
        options = dict(FAST, platform="linux", arch="x86_64", queue_dir=self.dir)
        options.update(kw)
        c = rollwatch.Client(endpoint or self.srv.url, self.key, self.app, "1.4.2", "stable", **options)
        self.clients.append(c)
        return c

    def child(self, code, endpoint, timeout=30, **kw):
        """Runs `code` in a new Python process with `client` configured like self.client()."""
        options = dict(FAST, platform="linux", arch="x86_64", queue_dir=self.dir)
        options.update(kw)
        script = "import sys\nsys.path.insert(0, %r)\nimport rollwatch\n" % support.SDK_DIR
        script += "client = rollwatch.Client(%r, %r, %r, '1.4.2', 'stable', **%r)\n" % (
            endpoint, self.key, self.app, options)
        script += textwrap.dedent(code)
        return subprocess.run([sys.executable, "-c", script], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=timeout)


class Events(Base):
    def test_all_three_event_types_land_in_their_groups_and_usage_is_summed(self):
        c = self.client()
        c.crash("EXCEPTION_ACCESS_VIOLATION", details={"stack": ["main", "render"]})
        c.crash("EXCEPTION_ACCESS_VIOLATION")
        c.update_failed("signature_mismatch", details="download from 1.4.1 failed")
        c.install_failed("disk_full")
        for _ in range(3):
            c.session_started()
        c.update_succeeded()
        c.install_succeeded()
        c.install_succeeded()
        self.assertTrue(c.flush(timeout=10))
        self.assertEqual(
            self.srv.groups(self.app),
            {("crash", "EXCEPTION_ACCESS_VIOLATION"): 2, ("update_failed", "signature_mismatch"): 1,
             ("install_failed", "disk_full"): 1},
        )
        for row in self.srv.group_rows(self.app):
            self.assertEqual(row[:4], ("1.4.2", "stable", "linux", "x86_64"))
        self.assertEqual(self.srv.usage(self.app),
                         {"session": 3, "update_succeeded": 1, "install_succeeded": 2})
        blobs = self.srv.blobs(self.app)
        self.assertIn('{"stack": ["main", "render"]}', blobs)
        self.assertIn("download from 1.4.1 failed", blobs)
        # The same through the read API.
        token = self.srv.login()
        answer = self.srv.graphql(
            "query($a:ID!){reportGroups(appId:$a,first:20){edges{node{reason count}}}"
            " rolloutHealth(appId:$a,groupBy:[VERSION,CHANNEL]){version channel sessions}}",
            {"a": str(self.srv.app_id(self.app))}, token)
        self.assertNotIn("errors", answer, answer)
        nodes = {e["node"]["reason"]: e["node"]["count"] for e in answer["data"]["reportGroups"]["edges"]}
        self.assertEqual(nodes["EXCEPTION_ACCESS_VIOLATION"], 2)
        health = answer["data"]["rolloutHealth"]
        self.assertEqual([(h["version"], h["channel"], h["sessions"]) for h in health], [("1.4.2", "stable", 3)])
        self.assertEqual(c.pending(), 0)

    def test_usage_counts_are_summed_locally_into_one_request(self):
        queued = self.client(send=False)
        for _ in range(5):
            queued.session_started()
        queued.close()
        stub = Stub(self.srv.url)
        self.addCleanup(stub.close)
        c = self.client(stub.url)
        self.assertTrue(c.flush(timeout=10))
        usage = [r for r in stub.requests if r["path"] == "/reports/usage"]
        self.assertEqual(len(usage), 1)
        self.assertEqual(usage[0]["body"]["count"], 5)
        self.assertEqual(self.srv.usage(self.app), {"session": 5})

    def test_details_over_the_cap_are_truncated_and_the_report_kept(self):
        c = self.client()
        big = os.urandom(300000).hex()  # hex of random bytes: compresses only to about half
        c.crash("BigDetails", details=big)
        self.assertTrue(c.flush(timeout=10))
        self.assertEqual(self.srv.groups(self.app), {("crash", "BigDetails"): 1})
        (blob,) = self.srv.blobs(self.app)
        self.assertTrue(blob.endswith("[truncated by rollwatch]"))
        self.assertTrue(big.startswith(blob[:1000]))

    def test_platform_and_arch_are_normalised_to_the_closed_sets(self):
        norm = rollwatch.normalise_arch
        self.assertEqual([norm(a) for a in ("AMD64", "x86_64", "arm64", "aarch64", "i686", "armv7l", "sparc")],
                         ["x86_64", "x86_64", "aarch64", "aarch64", "x86", "armv7", "other"])
        plat = rollwatch.normalise_platform
        self.assertEqual([plat(p) for p in ("win32", "darwin", "linux", "cygwin", "freebsd13", "iOS")],
                         ["windows", "macos", "linux", "windows", "other", "ios"])
        c = rollwatch.Client(self.srv.url, self.key, self.app, "1", "stable", queue_dir=self.dir, send=False)
        self.assertIn(c._system["platform"], rollwatch.PLATFORMS)
        self.assertIn(c._system["arch"], rollwatch.ARCHES)
        c.close()

    def test_the_client_never_raises_into_the_app(self):
        blocked = os.path.join(self.dir, "file")
        open(blocked, "w").close()
        c = self.client("http://127.0.0.1:1", queue_dir=os.path.join(blocked, "queue"))
        c.crash("X", details=object())
        c.update_failed(None, details=b"\xff\xfe")
        c.session_started()
        c.close(timeout=0.2)


class DeviceId(Base):
    def test_install_id_is_random_kept_and_can_be_turned_off(self):
        stub = Stub(self.srv.url)
        self.addCleanup(stub.close)
        a = self.client(stub.url)
        a.crash("A")
        self.assertTrue(a.flush(10))
        a.close()
        b = self.client(stub.url)
        self.assertEqual(a.device_id, b.device_id)
        self.assertRegex(a.device_id, r"^[0-9a-f]{32}$")
        self.assertNotIn("%012x" % uuid.getnode(), a.device_id)
        with open(os.path.join(self.dir, "device_id")) as f:
            self.assertEqual(f.read().strip(), a.device_id)
        self.assertEqual(stub.requests[0]["headers"].get("x-device-id"), a.device_id)
        b.close()
        off = self.client(stub.url, device_id=False)
        off.crash("B")
        self.assertTrue(off.flush(10))
        self.assertNotIn("x-device-id", stub.requests[-1]["headers"])
        self.assertIsNone(off.device_id)


class Crashes(Base):
    def test_an_unhandled_exception_in_a_child_is_reported_on_the_next_start(self):
        dead = "http://127.0.0.1:%d" % support.free_port()
        out = self.child("""
            client.install_excepthook()
            def render():
                raise ValueError("bad frame for alice@example.com")
            render()
        """, dead)
        self.assertEqual(out.returncode, 1)
        self.assertIn(b"ValueError: bad frame", out.stderr)  # the previous hook still ran
        self.assertEqual(len(os.listdir(os.path.join(self.dir, "pending"))) +
                         len(os.listdir(os.path.join(self.dir, "batches"))), 1)
        c = self.client()  # the next start sends it
        self.assertTrue(c.flush(10))
        self.assertEqual(self.srv.groups(self.app), {("crash", "ValueError"): 1})
        (blob,) = self.srv.blobs(self.app)
        self.assertIn("Traceback (most recent call last)", blob)
        self.assertIn("in render", blob)
        self.assertIn("bad frame for <email>", blob)

    def test_an_unhandled_exception_in_a_thread_is_reported(self):
        out = self.child("""
            import threading
            client.install_excepthook()
            t = threading.Thread(target=lambda: {}["missing"])
            t.start(); t.join()
            print("still running")
            sys.exit(0 if client.close(timeout=10) else 3)
        """, self.srv.url)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn(b"still running", out.stdout)
        self.assertIn(b"KeyError", out.stderr)
        self.assertEqual(self.srv.groups(self.app), {("crash", "KeyError"): 1})

    def test_two_processes_sharing_the_queue_deliver_each_report_once(self):
        code = """
            for i in range(25):
                client.crash("Shared")
                client.session_started()
            client.flush(timeout=15)
            client.close(timeout=5)
        """
        script_procs = []
        for _ in range(2):
            options = dict(FAST, platform="linux", arch="x86_64", queue_dir=self.dir)
            script = "import sys\nsys.path.insert(0, %r)\nimport rollwatch\n" % support.SDK_DIR
            script += "client = rollwatch.Client(%r, %r, %r, '1.4.2', 'stable', **%r)\n" % (
                self.srv.url, self.key, self.app, options)
            script += textwrap.dedent(code)
            script_procs.append(subprocess.Popen([sys.executable, "-c", script]))
        for p in script_procs:
            self.assertEqual(p.wait(30), 0)
        c = self.client()
        self.assertTrue(c.flush(10))
        self.assertEqual(self.srv.groups(self.app), {("crash", "Shared"): 50})
        self.assertEqual(self.srv.usage(self.app), {"session": 50})


class Offline(Base):
    def setUp(self):
        self.server = Server().start()
        self.addCleanup(self.server.close)
        Base.setUp(self)

    def test_reports_queue_while_the_server_is_down_survive_a_restart_and_count_once(self):
        self.server.stop()
        out = self.child("""
            for _ in range(3):
                client.crash("EXCEPTION_ACCESS_VIOLATION", details="stack")
            client.update_failed("signature_mismatch")
            client.update_failed("signature_mismatch")
            client.install_failed("disk_full")
            for _ in range(4):
                client.session_started()
            client.update_succeeded()
            client.update_succeeded()
            print(client.pending())
            print(client.close(timeout=0.5))
        """, self.server.url)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout.split(), [b"12", b"False"])
        self.server.start()
        out = self.child("""
            ok = client.flush(timeout=10)
            client.close(timeout=1)
            sys.exit(0 if ok else 4)
        """, self.server.url)
        self.assertEqual(out.returncode, 0, out.stderr)
        expected_groups = {("crash", "EXCEPTION_ACCESS_VIOLATION"): 3, ("update_failed", "signature_mismatch"): 2,
                           ("install_failed", "disk_full"): 1}
        expected_usage = {"session": 4, "update_succeeded": 2}
        self.assertEqual(self.server.groups(self.app), expected_groups)
        self.assertEqual(self.server.usage(self.app), expected_usage)
        # Another start finds nothing left to send: no duplicates.
        c = self.client()
        self.assertEqual(c.pending(), 0)
        self.assertTrue(c.flush(2))
        self.assertEqual(self.server.groups(self.app), expected_groups)
        self.assertEqual(self.server.usage(self.app), expected_usage)


class Retries(Base):
    def test_a_lost_answer_is_retried_with_the_same_key_and_counted_once(self):
        stub = Stub(self.srv.url, plan=lambda n, path, body: "drop" if n in (0, 2) else "forward")
        self.addCleanup(stub.close)
        c = self.client(stub.url)
        c.crash("LostAnswer")
        self.assertTrue(c.flush(10))
        c.session_started()
        self.assertTrue(c.flush(10))
        paths = [r["path"] for r in stub.requests]
        self.assertEqual(paths, ["/reports/ingest/batch"] * 2 + ["/reports/usage"] * 2)
        keys = [r["headers"]["idempotency-key"] for r in stub.requests]
        self.assertEqual(keys[0], keys[1])
        self.assertEqual(keys[2], keys[3])
        self.assertNotEqual(keys[0], keys[2])
        for k in keys:
            self.assertTrue(0 < len(k) <= 128 and all(33 <= ord(ch) <= 126 for ch in k))
        self.assertEqual(c.pending(), 0)
        self.assertEqual(self.srv.groups(self.app)[("crash", "LostAnswer")], 1)
        self.assertEqual(self.srv.usage(self.app), {"session": 1})

    def test_429_retry_after_is_honoured(self):
        stub = Stub(self.srv.url, plan=lambda n, path, body: (
            429, {"Retry-After": "2", "Content-Type": "application/json"},
            {"error": {"code": "rate_limited", "message": "slow down"}}) if n == 0 else "forward")
        self.addCleanup(stub.close)
        c = self.client(stub.url)
        c.update_failed("RateLimited")
        self.assertFalse(c.flush(0.5))  # the next attempt is due after Retry-After
        self.assertTrue(c.flush(10))
        first, second = stub.requests[0], stub.requests[1]
        self.assertGreaterEqual(second["at"] - first["at"], 2.0)
        self.assertEqual(first["headers"]["idempotency-key"], second["headers"]["idempotency-key"])
        self.assertEqual(self.srv.groups(self.app), {("update_failed", "RateLimited"): 1})

    def test_only_the_reports_refused_for_now_are_retried_under_a_new_key(self):
        # A stub alone (no server): report 0 accepted, report 1 rate limited, report 2 invalid.
        def plan(n, path, body):
            if n == 0:
                return (202, {"Retry-After": "1"}, {"accepted": 1, "rejected": 2, "results": [
                    {"status": 202, "group": "x", "details_stored": False},
                    {"status": 429, "error": {"code": "rate_limited", "message": "later"}},
                    {"status": 422, "error": {"code": "invalid_field", "message": "no", "field": "event.reason"}}]})
            return (202, {}, {"accepted": 1, "rejected": 0, "results": [{"status": 202}]})
        stub = Stub(plan=plan)
        self.addCleanup(stub.close)
        queued = self.client(send=False)
        for reason in ("A", "B", "C"):
            queued.crash(reason)
        queued.close()
        c = self.client(stub.url)
        with self.assertLogs("rollwatch", "WARNING") as logs:
            self.assertTrue(c.flush(10))
        self.assertTrue(any("invalid_field" in m for m in logs.output))
        first, second = stub.requests
        self.assertEqual([r["event"]["reason"] for r in second["body"]["reports"]], ["B"])
        self.assertNotEqual(first["headers"]["idempotency-key"], second["headers"]["idempotency-key"])
        self.assertGreaterEqual(second["at"] - first["at"], 1.0)

    def test_a_network_error_backs_off_and_the_report_is_sent_later(self):
        stub = Stub(self.srv.url, plan=lambda n, path, body: (
            503, {"Content-Type": "application/json"}, {"error": {"code": "store_unavailable", "message": "x"}})
            if n < 3 else "forward")
        self.addCleanup(stub.close)
        c = self.client(stub.url)
        c.install_failed("Flaky")
        self.assertTrue(wait_for(lambda: c.flush(1) or c.pending() == 0, timeout=10))
        self.assertEqual(len(stub.requests), 4)
        gaps = [b["at"] - a["at"] for a, b in zip(stub.requests, stub.requests[1:])]
        self.assertTrue(all(g >= 0.02 for g in gaps), gaps)
        self.assertEqual(self.srv.groups(self.app), {("install_failed", "Flaky"): 1})


class Bounds(Base):
    def test_a_full_queue_drops_the_oldest(self):
        queued = self.client(send=False, max_queue_files=5)
        for i in range(8):
            queued.crash("Report%d" % i)
        self.assertEqual(queued.pending(), 5)
        queued.close()
        c = self.client()
        self.assertTrue(c.flush(10))
        self.assertEqual(self.srv.groups(self.app), {("crash", "Report%d" % i): 1 for i in range(3, 8)})

    def test_the_byte_bound_drops_the_oldest_too(self):
        queued = self.client(send=False, max_queue_bytes=2500)
        for i in range(10):
            queued.crash("Sized%d" % i, details="x" * 10)
        kept = queued.pending()
        self.assertLess(kept, 10)
        self.assertGreater(kept, 0)
        queued.close()
        c = self.client()
        self.assertTrue(c.flush(10))
        self.assertEqual(self.srv.groups(self.app), {("crash", "Sized%d" % i): 1 for i in range(10 - kept, 10)})


class Scrubbing(Base):
    PII = ["alice@example.com", "10.20.30.40", "2001:db8:85a3::8a2e:370:7334", "fe80::1ff:fe23:4567:890a",
           "/home/alice/", "/Users/bob/", "C:\\Users\\carol\\", "Project Falcon", "carol", "alice", "bob"]

    def test_personal_data_never_reaches_the_server(self):
        c = self.client(deny_list=["Project Falcon"])
        c.crash("failed for alice@example.com from 10.20.30.40 in project falcon")
        details = ("user alice@example.com\nconnect 10.20.30.40:443 failed, then "
                   "[2001:db8:85a3::8a2e:370:7334]:443 and fe80::1ff:fe23:4567:890a\n"
                   "  File \"/home/alice/app/main.py\", line 3\n"
                   "  File \"/Users/bob/Library/app.py\", line 4\n"
                   "  loading C:\\Users\\carol\\AppData\\Local\\app\\x.dll for Project Falcon\n")
        c.update_failed("PathLeak", details=details)
        c.install_failed("JsonDetails", details={"path": "C:\\Users\\carol\\Downloads\\setup.exe", "ip": "10.20.30.40"})
        self.assertTrue(c.flush(10))
        groups = self.srv.groups(self.app)
        self.assertIn(("crash", "failed for <email> from <ip> in <redacted>"), groups)
        blobs = self.srv.blobs(self.app)
        self.assertEqual(len(blobs), 2)
        text = "\n".join(blobs) + "\n".join(r for _, r in groups)
        for pii in self.PII:
            self.assertNotIn(pii, text)
        self.assertIn("/home/<user>/app/main.py", text)
        self.assertIn("/Users/<user>/Library", text)
        self.assertIn("C:\\Users\\<user>\\AppData", text)
        self.assertIn("C:\\\\Users\\\\<user>\\\\Downloads", text)  # inside JSON text
        self.assertIn("[<ip>]:443 and <ip>", text)
        self.assertIn("connect <ip>:443", text)


if __name__ == "__main__":
    unittest.main()

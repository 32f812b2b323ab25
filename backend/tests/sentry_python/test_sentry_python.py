"""Python's stock `sentry-sdk` reporting to the real `rollwatch serve` (issue 14).

Run by `cargo xtask test` with the venv's Python (requirements.txt beside this file) and
ROLLWATCH_BIN set to the debug server; the server side is the same fixture as the Python
client's tests (sdk/python/tests/support.py).
"""

import os
import subprocess
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, os.path.join(ROOT, "sdk", "python"))

from tests import support  # noqa: E402  (sdk/python/tests/support.py)

APP = "editor"


class SentryPythonSdk(unittest.TestCase):
    def setUp(self):
        self.server = support.Server().start()
        self.addCleanup(self.server.close)
        key = self.server.create_app(APP)
        self.app_id = self.server.app_id(APP)
        self.dsn = "http://%s@127.0.0.1:%d/%d" % (key, self.server.port, self.app_id)

    def run_app(self, mode):
        """app.py in a child process, as a user runs their program."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("SENTRY_")}
        return subprocess.run(
            [sys.executable, os.path.join(HERE, "app.py"), self.dsn, mode],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            timeout=60,
        )

    def test_an_unhandled_exception_is_a_crash_and_each_run_a_session(self):
        clean = self.run_app("exit")
        self.assertEqual(clean.returncode, 0, clean.stderr.decode())
        crashed = self.run_app("crash")
        self.assertEqual(crashed.returncode, 1, crashed.stderr.decode())
        self.assertIn(b"ZeroDivisionError", crashed.stderr)

        # Python events say nothing of the OS or the arch, nor does the release: `unknown`.
        # The two handled FileNotFoundErrors are accepted and not counted.
        self.assertEqual(
            self.server.group_rows(APP),
            [("1.4.2", "beta", "unknown", "unknown", "crash", "ZeroDivisionError", 1)],
        )
        self.assertEqual(self.server.usage(APP), {"session": 2})

        token = self.server.login()
        health = self.server.graphql(
            "query($a: ID!) { rolloutHealth(appId: $a, groupBy: [VERSION, CHANNEL]) "
            "{ version channel crashes sessions crashRate } }",
            {"a": str(self.app_id)},
            token=token,
        )
        self.assertNotIn("errors", health, health)
        self.assertEqual(
            health["data"]["rolloutHealth"],
            [{"version": "1.4.2", "channel": "beta", "crashes": 1, "sessions": 2, "crashRate": 0.5}],
        )
        groups = self.server.graphql(
            "query($a: ID!) { reportGroups(appId: $a) { edges { node { reason blobCount } } } }",
            {"a": str(self.app_id)},
            token=token,
        )
        self.assertEqual(
            groups["data"]["reportGroups"]["edges"],
            [{"node": {"reason": "ZeroDivisionError", "blobCount": 1}}],
        )
        # The traceback is in the details.
        (details,) = self.server.blobs(APP)
        self.assertIn("ZeroDivisionError", details)
        self.assertIn("app.py", details)


if __name__ == "__main__":
    unittest.main()

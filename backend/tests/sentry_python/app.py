"""An app that uses the stock Python Sentry SDK, as README's "Use your Sentry SDK" shows it.

Run by test_sentry_python.py as `python app.py DSN crash|exit`: it starts a release-health
session, reports a handled error, then either dies of an unhandled exception or exits.
"""

import sys

# README: python snippet begins
import sentry_sdk

sentry_sdk.init(
    dsn=sys.argv[1],  # http://rpk_…@rollwatch.example.com/42
    release="editor@1.4.2+build.7",
    environment="beta",
)
# One release-health session for the whole run of the program.
sentry_sdk.get_isolation_scope().start_session(session_mode="application")
# README: python snippet ends

try:
    open("/nonexistent/settings.toml")
except OSError as handled:
    sentry_sdk.capture_exception(handled)

if sys.argv[2] == "crash":
    1 / 0  # unhandled: sys.excepthook reports it, the session ends crashed
sentry_sdk.get_isolation_scope().end_session()

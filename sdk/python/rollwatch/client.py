"""The Rollwatch client: records reports into the durable queue, sends them in the background."""

import atexit
import base64
import email.utils
import gzip
import json
import logging
import os
import random
import re
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request

from . import _platform
from ._queue import Queue
from ._scrub import Scrubber

log = logging.getLogger("rollwatch")

__all__ = ["Client"]

MAX_REPORTS_PER_BATCH = 100
MAX_REASON_CHARS = 256
MAX_DETAILS_DECOMPRESSED = 1048576
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")
_TRUNCATED = "\n…[truncated by rollwatch]"


def default_queue_dir(app):
    """`<platform cache dir>/rollwatch/<app>`."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", app).strip(".") or "app"
    if sys.platform.startswith("win"):
        base = os.environ.get("LOCALAPPDATA") or os.path.join(
            os.path.expanduser("~"), "AppData", "Local"
        )
    elif sys.platform == "darwin":
        base = os.path.join(os.path.expanduser("~"), "Library", "Caches")
    else:
        base = os.environ.get("XDG_CACHE_HOME") or ""
        if not os.path.isabs(base):
            base = os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "rollwatch", safe)


def _text(value, limit):
    value = _CONTROL.sub(" ", str(value)).strip()
    return value[:limit]


def _retry_after(headers):
    """Seconds from a `Retry-After` header (delta-seconds or an HTTP date), or None."""
    if headers is None:
        return None
    value = headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - time.time())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _retryable(status):
    return status in (408, 425, 429) or status >= 500 or status < 200 or 300 <= status < 400


class _Retry(Exception):
    def __init__(self, delay=None):
        Exception.__init__(self, "retry")
        self.delay = delay


class Client:
    """Records crashes, failed and succeeded updates and installs, and sessions.

    Every method returns at once and never raises: the report is scrubbed, compressed and
    written to the durable queue on the calling thread, and a daemon thread sends it.
    """

    def __init__(
        self,
        endpoint,
        key,
        app,
        version,
        channel,
        platform=None,
        arch=None,
        queue_dir=None,
        device_id=True,
        deny_list=(),
        max_queue_files=1000,
        max_queue_bytes=10 * 1024 * 1024,
        max_details_bytes=131072,
        max_body_bytes=240000,
        os_version=None,
        send=True,
        backoff_initial=1.0,
        backoff_max=300.0,
        request_timeout=10.0,
        poll_interval=60.0,
        crash_flush_timeout=1.0,
        exit_timeout=1.0,
    ):
        self._endpoint = str(endpoint).rstrip("/")
        self._key = str(key)
        self._application = {
            "name": _text(app, 64),
            "version": _text(version, 64),
            "channel": _text(channel, 32),
        }
        self._system = {
            "platform": _platform.normalise_platform(platform)
            if platform
            else _platform.detect_platform(),
            "arch": _platform.normalise_arch(arch) if arch else _platform.detect_arch(),
        }
        osv = _text(os_version if os_version is not None else _platform.os_version(), 64)
        if osv:
            self._system["os_version"] = osv
        self._scrub = Scrubber(deny_list)
        self._max_details = int(max_details_bytes)
        self._max_body = int(max_body_bytes)
        self._backoff_initial = float(backoff_initial)
        self._backoff_max = float(backoff_max)
        self._request_timeout = float(request_timeout)
        self._poll_interval = float(poll_interval)
        self._crash_flush_timeout = float(crash_flush_timeout)
        self._exit_timeout = float(exit_timeout)
        self._attempt = 0
        self._next_attempt = 0.0
        self._wake = threading.Event()
        self._stop = False
        self._closed = False
        self._hooked = False
        self._thread = None
        self._queue = self._open_queue(
            queue_dir or default_queue_dir(app), max_queue_files, max_queue_bytes
        )
        self._device_id = self._load_device_id() if device_id and self._queue else None
        self._opener = urllib.request.build_opener()
        if send and self._queue is not None:
            self._thread = threading.Thread(target=self._run, name="rollwatch-sender", daemon=True)
            self._thread.start()
            atexit.register(self._at_exit)

    # --- public API --------------------------------------------------------------------

    def crash(self, reason, details=None):
        self._report("crash", reason, details)

    def update_failed(self, reason, details=None):
        self._report("update_failed", reason, details)

    def install_failed(self, reason, details=None):
        self._report("install_failed", reason, details)

    def update_succeeded(self):
        self._usage("update_succeeded")

    def install_succeeded(self):
        self._usage("install_succeeded")

    def session_started(self):
        self._usage("session")

    @property
    def device_id(self):
        return self._device_id

    @property
    def queue_dir(self):
        return self._queue.folder if self._queue else None

    def pending(self):
        """How many reports and counts wait in the queue (this app's folder, all processes)."""
        try:
            return self._queue.count() if self._queue else 0
        except Exception:
            log.exception("rollwatch: cannot count the queue")
            return 0

    def flush(self, timeout=5.0):
        """Waits up to `timeout` seconds for the queue to empty; True when it did.

        Returns early (False) when the next attempt is due only after the deadline, e.g.
        while the server is unreachable or asked to wait (`Retry-After`).
        """
        try:
            deadline = time.monotonic() + max(0.0, float(timeout))
            if self._queue is None:
                return True
            self._wake.set()
            while True:
                if self._queue.is_empty():
                    return True
                if self._thread is None or not self._thread.is_alive():
                    return False
                now = time.monotonic()
                if now >= deadline or self._next_attempt > deadline:
                    return False
                time.sleep(min(0.02, deadline - now))
        except Exception:
            log.exception("rollwatch: flush failed")
            return False

    def close(self, timeout=5.0):
        """Flushes for at most `timeout` seconds, then stops the sender. Unsent reports stay
        queued on disk for the next start."""
        if self._closed:
            return True
        try:
            start = time.monotonic()
            done = self.flush(timeout)
            self._closed = True
            self._stop = True
            self._wake.set()
            if self._thread is not None:
                self._thread.join(max(0.0, timeout - (time.monotonic() - start)))
            try:
                atexit.unregister(self._at_exit)
            except Exception:
                pass
            return done
        except Exception:
            log.exception("rollwatch: close failed")
            return False

    def install_excepthook(self):
        """Records unhandled exceptions (main thread and `threading` threads) as crashes:
        reason = the exception's type name, details = the traceback. The report is on disk
        before the previous hook runs."""
        if self._hooked:
            return
        self._hooked = True
        previous = sys.excepthook

        def excepthook(exc_type, exc, tb):
            try:
                if not issubclass(exc_type, (KeyboardInterrupt, SystemExit)):
                    self._record_exception(exc_type, exc, tb)
                    self.flush(self._crash_flush_timeout)
            except Exception:
                log.exception("rollwatch: could not record the crash")
            previous(exc_type, exc, tb)

        sys.excepthook = excepthook
        if hasattr(threading, "excepthook"):
            previous_thread = threading.excepthook

            def thread_excepthook(args):
                try:
                    if args.exc_type is not None and not issubclass(args.exc_type, SystemExit):
                        self._record_exception(args.exc_type, args.exc_value, args.exc_traceback)
                except Exception:
                    log.exception("rollwatch: could not record the crash")
                previous_thread(args)

            threading.excepthook = thread_excepthook

    # --- recording ---------------------------------------------------------------------

    def _record_exception(self, exc_type, exc, tb):
        text = "".join(traceback.format_exception(exc_type, exc, tb))
        self._report("crash", getattr(exc_type, "__name__", str(exc_type)), text)

    def _report(self, event_type, reason, details):
        try:
            if self._queue is None:
                return
            reason = _text(self._scrub(str(reason)), MAX_REASON_CHARS) or "unknown"
            report = {
                "application": dict(self._application),
                "system": dict(self._system),
                "event": {"type": event_type, "reason": reason},
            }
            packed = self._pack_details(details)
            if packed is not None:
                report["details"] = packed
            self._queue.put("report", report)
            self._wake.set()
        except Exception:
            log.exception("rollwatch: could not record a %s report", event_type)

    def _usage(self, kind):
        try:
            if self._queue is None:
                return
            self._queue.put(
                "usage",
                {
                    "application": dict(self._application),
                    "system": dict(self._system),
                    "kind": kind,
                    "count": 1,
                },
            )
            self._wake.set()
        except Exception:
            log.exception("rollwatch: could not record a %s count", kind)

    def _pack_details(self, details):
        """Scrubbed, gzip-compressed, base64; truncated to fit the cap, or left out."""
        if details is None:
            return None
        if isinstance(details, bytes):
            text = details.decode("utf-8", "replace")
        elif isinstance(details, str):
            text = details
        else:
            text = json.dumps(details, default=str, ensure_ascii=False)
        if len(text) > MAX_DETAILS_DECOMPRESSED:
            text = text[:MAX_DETAILS_DECOMPRESSED]
        text = self._scrub(text)
        raw = text.encode("utf-8")
        if len(raw) > MAX_DETAILS_DECOMPRESSED:
            raw = raw[: MAX_DETAILS_DECOMPRESSED - 64] + _TRUNCATED.encode("utf-8")
        for _ in range(8):
            data = base64.b64encode(gzip.compress(raw, 6)).decode("ascii")
            if len(data) <= self._max_details:
                return {"encoding": "gzip", "data": data}
            keep = int(len(raw) * self._max_details / len(data) * 0.9) - 64
            if keep <= 0:
                break
            raw = raw[:keep] + _TRUNCATED.encode("utf-8")
        log.warning("rollwatch: details over %d bytes compressed; sent without them", self._max_details)
        return None

    # --- queue set-up --------------------------------------------------------------------

    def _open_queue(self, folder, max_files, max_bytes):
        user = "-%d" % os.getuid() if hasattr(os, "getuid") else ""
        fallback = os.path.join(tempfile.gettempdir(), "rollwatch" + user, os.path.basename(folder))
        for candidate in (folder, fallback):
            try:
                return Queue(candidate, max_files, max_bytes)
            except Exception as e:
                log.warning("rollwatch: cannot use the queue folder %s: %s", candidate, e)
        log.error("rollwatch: no queue folder; reports are dropped")
        return None

    def _load_device_id(self):
        """A random install id kept in the queue folder; never a hardware or account id."""
        path = os.path.join(self._queue.folder, "device_id")
        try:
            for _ in range(2):
                try:
                    with open(path, "r", encoding="ascii") as f:
                        value = f.read().strip()
                    if 0 < len(value) <= 128 and all(33 <= ord(c) <= 126 for c in value):
                        return value
                    if value:
                        os.unlink(path)
                except FileNotFoundError:
                    pass
                except (OSError, UnicodeDecodeError):
                    pass
                value = os.urandom(16).hex()
                try:
                    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                except FileExistsError:
                    time.sleep(0.01)  # another process is writing it: read theirs
                    continue
                with os.fdopen(fd, "w", encoding="ascii") as f:
                    f.write(value)
                return value
        except Exception:
            log.exception("rollwatch: cannot keep the install id")
        return os.urandom(16).hex()

    # --- sending -------------------------------------------------------------------------

    def _at_exit(self):
        self.close(self._exit_timeout)

    def _run(self):
        while not self._stop:
            try:
                wait = self._next_attempt - time.monotonic()
                if wait > 0:
                    self._wake.wait(min(wait, self._poll_interval))
                    self._wake.clear()
                    continue
                delay = self._cycle()
                if delay is None:
                    self._attempt = 0
                    self._next_attempt = 0.0
                    self._wake.wait(self._poll_interval)
                    self._wake.clear()
                else:
                    self._next_attempt = time.monotonic() + delay
            except Exception:
                log.exception("rollwatch: sender error")
                self._next_attempt = time.monotonic() + self._backoff()

    def _backoff(self):
        delay = min(self._backoff_max, self._backoff_initial * (2 ** min(self._attempt, 30)))
        self._attempt += 1
        return delay * random.uniform(0.5, 1.0)

    def _cycle(self):
        """Sends everything queued; None when done, else seconds until the next attempt."""
        if not self._queue.try_lock():
            return min(self._poll_interval, 0.5)  # another process of the app is sending
        try:
            self._queue.recover()
            for _ in range(1000):
                self._wake.clear()
                self._queue.form_batches(MAX_REPORTS_PER_BATCH, self._max_body)
                batches = self._queue.batches()
                if not batches:
                    return None
                for batch in batches:
                    if self._stop:
                        return None
                    try:
                        if batch.kind == "usage":
                            self._send_usage(batch)
                        else:
                            self._send_reports(batch)
                    except _Retry as r:
                        if r.delay is not None:
                            return r.delay + random.uniform(0.0, min(1.0, 0.1 * r.delay))
                        return self._backoff()
                self._attempt = 0
            return None
        finally:
            self._queue.unlock()

    def _post(self, path, body, key):
        headers = {
            "Authorization": "Bearer " + self._key,
            "Content-Type": "application/json",
            "Idempotency-Key": key,
            "User-Agent": "rollwatch-python/0.1",
        }
        if self._device_id:
            headers["X-Device-ID"] = self._device_id
        request = urllib.request.Request(
            self._endpoint + path,
            data=json.dumps(body, separators=(",", ":")).encode("utf-8"),
            headers=headers,
            method="POST",
        )
        try:
            with self._opener.open(request, timeout=self._request_timeout) as response:
                return response.status, response.headers, response.read()
        except urllib.error.HTTPError as e:
            try:
                data = e.read()
            except Exception:
                data = b""
            return e.code, e.headers, data
        except Exception as e:  # refused, reset, timed out, DNS: the answer may be lost
            log.info("rollwatch: %s unreachable (%s); will retry", self._endpoint, e)
            raise _Retry()

    def _send_reports(self, batch):
        members = batch.members()
        if not members:
            batch.delete()
            return
        sent = [name for name, _ in members]
        status, headers, data = self._post(
            "/reports/ingest/batch", {"reports": [p for _, p in members]}, batch.key
        )
        if not 200 <= status < 300:
            self._whole_request_failed(batch, status, headers, data, len(sent))
            return
        try:
            results = json.loads(data.decode("utf-8")).get("results") or []
        except (ValueError, AttributeError, UnicodeDecodeError):
            results = []
        if len(results) == len(sent):
            names = sent
        elif len(results) == len(batch.files):
            names = batch.files  # the first answer, repeated for a retried key
        else:
            names, results = sent, [{"status": 202}] * len(sent)
            log.warning("rollwatch: batch answer without per-report results; counted as sent")
        keep = []
        for name, result in zip(names, results):
            st = result.get("status", 202) if isinstance(result, dict) else 202
            if not isinstance(st, int) or 200 <= st < 300:
                continue
            if _retryable(st):
                keep.append(name)
            else:
                log.warning("rollwatch: a report was refused (%s): %s", st, _describe(result))
        keep = [n for n in keep if n in sent]
        if not keep:
            batch.delete()
            return
        batch.keep_only(keep)  # a new key: the rest is a new request
        raise _Retry(_retry_after(headers))

    def _send_usage(self, batch):
        members = batch.members()
        if not members:
            batch.delete()
            return
        first = members[0][1]
        total = 0
        for _, payload in members:
            try:
                total += max(1, int(payload.get("count", 1)))
            except (TypeError, ValueError):
                total += 1
        body = {
            "application": first["application"],
            "system": first["system"],
            "kind": first["kind"],
            "count": min(total, 1000000),
        }
        status, headers, data = self._post("/reports/usage", body, batch.key)
        if 200 <= status < 300:
            batch.delete()
            return
        self._whole_request_failed(batch, status, headers, data, total)

    def _whole_request_failed(self, batch, status, headers, data, n):
        if _retryable(status):
            log.info("rollwatch: server answered %s; will retry", status)
            raise _Retry(_retry_after(headers))
        try:
            detail = _describe(json.loads(data.decode("utf-8")))
        except Exception:
            detail = data[:200]
        log.warning("rollwatch: server refused %d report(s) with %s, dropped: %s", n, status, detail)
        batch.delete()


def _describe(answer):
    err = answer.get("error") if isinstance(answer, dict) else None
    if isinstance(err, dict):
        return "%s: %s%s" % (
            err.get("code"),
            err.get("message"),
            " (%s)" % err["field"] if err.get("field") else "",
        )
    return str(answer)[:200]

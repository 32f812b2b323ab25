"""The durable queue: one file per pending report, batches formed on disk.

Layout of the queue folder::

    device_id            the random install id (when enabled)
    lock                 held (flock / msvcrt) by the one process sending at a time
    pending/             <time_ns>-<pid>-<rand>.r.json (a report) or .u.json (one usage count)
    batches/<name>/      members moved out of pending/ + meta.json (idempotency key, files)

Every file is written to a dot-named temp file and moved into place with ``os.replace``, so a
reader sees a whole file or none. A report exists in exactly one place at a time: pending
files are *moved* into a batch folder that is assembled under a dot name and renamed into
place whole, so nothing is duplicated by a crash at any point. Only the holder of ``lock``
forms and sends batches; any process may add pending files and trim the queue.
"""

import json
import logging
import os
import secrets
import shutil
import time

log = logging.getLogger("rollwatch")

REPORT = ".r.json"
USAGE = ".u.json"
META = "meta.json"


def new_key():
    """An Idempotency-Key: 32 random hex characters (well inside 128 visible ASCII)."""
    return secrets.token_hex(16)


def write_atomically(path, data):
    folder, name = os.path.split(path)
    tmp = os.path.join(folder, ".tmp-%s-%s" % (name, secrets.token_hex(4)))
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        try:
            os.fsync(f.fileno())
        except OSError:
            pass
    try:
        os.replace(tmp, path)
    except BaseException:
        _unlink(tmp)
        raise


def _unlink(path):
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False


def _listdir(path):
    try:
        return sorted(n for n in os.listdir(path) if not n.startswith("."))
    except FileNotFoundError:
        return []


def _size(path):
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


class _FileLock:
    """A non-blocking, process-wide exclusive lock on a file, released when the process dies."""

    def __init__(self, path):
        self._path = path
        self._file = None

    def acquire(self):
        f = open(self._path, "a+b")
        try:
            if os.name == "nt":
                import msvcrt

                f.seek(0)
                msvcrt.locking(f.fileno(), msvcrt.LK_NBLCK, 1)
            else:
                import fcntl

                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            return False
        self._file = f
        return True

    def release(self):
        f, self._file = self._file, None
        if f is None:
            return
        try:
            if os.name == "nt":
                import msvcrt

                f.seek(0)
                msvcrt.locking(f.fileno(), msvcrt.LK_UNLCK, 1)
            else:
                import fcntl

                fcntl.flock(f.fileno(), fcntl.LOCK_UN)
        finally:
            f.close()


class Batch:
    def __init__(self, path, meta):
        self.path = path
        self.meta = meta

    @property
    def kind(self):
        return self.meta.get("type")

    @property
    def key(self):
        return self.meta.get("key")

    @property
    def files(self):
        return list(self.meta.get("files", []))

    def members(self):
        """(name, payload) of the members still on disk, in the batch's order."""
        out = []
        for name in self.files:
            try:
                with open(os.path.join(self.path, name), "rb") as f:
                    out.append((name, json.loads(f.read().decode("utf-8"))))
            except FileNotFoundError:
                continue
            except (OSError, ValueError) as e:
                log.warning("rollwatch: dropping unreadable queued report %s: %s", name, e)
                _unlink(os.path.join(self.path, name))
        return out

    def keep_only(self, names):
        """Keeps `names` under a fresh key; every other member is removed."""
        self.meta = {"type": self.kind, "key": new_key(), "files": list(names)}
        write_atomically(os.path.join(self.path, META), json.dumps(self.meta).encode("utf-8"))
        for name in _listdir(self.path):
            if name != META and name not in names:
                _unlink(os.path.join(self.path, name))

    def delete(self):
        shutil.rmtree(self.path, ignore_errors=True)


class Queue:
    def __init__(self, folder, max_files, max_bytes):
        self.folder = folder
        self.pending = os.path.join(folder, "pending")
        self.batches_dir = os.path.join(folder, "batches")
        self.max_files = max(1, int(max_files))
        self.max_bytes = max(1, int(max_bytes))
        os.makedirs(self.pending, exist_ok=True)
        os.makedirs(self.batches_dir, exist_ok=True)
        self._lock = _FileLock(os.path.join(folder, "lock"))

    # --- any process -------------------------------------------------------------------

    def put(self, kind, payload):
        suffix = REPORT if kind == "report" else USAGE
        name = "%020d-%d-%s%s" % (time.time_ns(), os.getpid(), secrets.token_hex(4), suffix)
        data = json.dumps(payload, separators=(",", ":")).encode("utf-8")
        write_atomically(os.path.join(self.pending, name), data)
        self.trim()
        return name

    def units(self):
        """Every queued unit, oldest first: (sort name, path, is_batch, files, bytes)."""
        out = []
        for name in _listdir(self.pending):
            path = os.path.join(self.pending, name)
            out.append((name, path, False, 1, _size(path)))
        try:
            names = os.listdir(self.batches_dir)
        except FileNotFoundError:
            names = []
        for name in names:
            if name.startswith(".") and not name.startswith(".forming-"):
                continue
            path = os.path.join(self.batches_dir, name)
            members = [n for n in _listdir(path) if n != META]
            size = sum(_size(os.path.join(path, n)) for n in members)
            # A batch being formed sorts first and is never dropped (see trim).
            out.append((name, path, True, len(members), size))
        out.sort(key=lambda u: u[0])
        return out

    def trim(self):
        """Drops the oldest reports (a formed batch as a whole) until within both bounds."""
        units = self.units()
        files = sum(u[3] for u in units)
        size = sum(u[4] for u in units)
        for name, path, is_batch, n, b in units:
            if files <= self.max_files and size <= self.max_bytes:
                break
            if name.startswith("."):
                continue  # being formed by the sender right now
            if is_batch:
                # Renamed away first, so a sender sees the whole batch or none of it.
                gone = os.path.join(self.batches_dir, ".drop-" + secrets.token_hex(6))
                try:
                    os.rename(path, gone)
                except OSError:
                    continue
                shutil.rmtree(gone, ignore_errors=True)
            elif not _unlink(path):
                continue
            files -= n
            size -= b
            log.warning("rollwatch: queue full, dropped %d oldest report(s)", n)

    def is_empty(self):
        if _listdir(self.pending):
            return False
        try:
            names = os.listdir(self.batches_dir)
        except FileNotFoundError:
            return True
        # A batch being formed (".forming-…") holds reports too.
        return not any(not n.startswith(".") or n.startswith(".forming-") for n in names)

    def count(self):
        """Reports and counts queued; read until two readings agree, as a sender may be
        moving files between folders meanwhile."""
        last = None
        for _ in range(20):
            now = sum(u[3] for u in self.units())
            if now == last:
                break
            last = now
            time.sleep(0.005)
        return last

    # --- the lock holder ---------------------------------------------------------------

    def try_lock(self):
        try:
            return self._lock.acquire()
        except OSError as e:
            log.warning("rollwatch: cannot open the queue lock: %s", e)
            return False

    def unlock(self):
        self._lock.release()

    def recover(self):
        """Undoes what a sender that died mid-way left: half-formed batches, temp files."""
        now = time.time()
        for parent in (self.pending, self.batches_dir):
            try:
                names = os.listdir(parent)
            except FileNotFoundError:
                continue
            for name in names:
                path = os.path.join(parent, name)
                if name.startswith(".forming-"):
                    for member in _listdir(path):
                        if member != META:
                            try:
                                os.replace(os.path.join(path, member), os.path.join(self.pending, member))
                            except OSError:
                                pass
                    shutil.rmtree(path, ignore_errors=True)
                elif name.startswith((".tmp-", ".drop-")):
                    try:
                        if now - os.stat(path).st_mtime > 3600:
                            if os.path.isdir(path):
                                shutil.rmtree(path, ignore_errors=True)
                            else:
                                _unlink(path)
                    except OSError:
                        pass

    def form_batches(self, max_reports, max_body_bytes, max_usage_files=10000):
        """Moves every pending file into batches: reports by 100 and by body size, usage
        counts by release and kind (summed when sent)."""
        reports, usage = [], {}
        for name in _listdir(self.pending):
            path = os.path.join(self.pending, name)
            if name.endswith(REPORT):
                reports.append((name, _size(path)))
            elif name.endswith(USAGE):
                try:
                    with open(path, "rb") as f:
                        payload = json.loads(f.read().decode("utf-8"))
                    group = json.dumps(
                        [payload["application"], payload["system"], payload["kind"]],
                        sort_keys=True,
                    )
                except FileNotFoundError:
                    continue
                except (OSError, ValueError, KeyError, TypeError) as e:
                    log.warning("rollwatch: dropping unreadable queued count %s: %s", name, e)
                    _unlink(path)
                    continue
                usage.setdefault(group, []).append(name)
        chunk, chunk_bytes = [], 0
        for name, size in reports:
            if chunk and (len(chunk) >= max_reports or chunk_bytes + size > max_body_bytes):
                self._form("reports", chunk)
                chunk, chunk_bytes = [], 0
            chunk.append(name)
            chunk_bytes += size + 1
        if chunk:
            self._form("reports", chunk)
        for names in usage.values():
            for i in range(0, len(names), max_usage_files):
                self._form("usage", names[i : i + max_usage_files])

    def _form(self, kind, names):
        tag = secrets.token_hex(4)
        forming = os.path.join(self.batches_dir, ".forming-" + tag)
        os.mkdir(forming)
        moved = []
        for name in names:
            try:
                os.replace(os.path.join(self.pending, name), os.path.join(forming, name))
                moved.append(name)
            except FileNotFoundError:
                continue  # trimmed meanwhile
        if not moved:
            shutil.rmtree(forming, ignore_errors=True)
            return
        meta = {"type": kind, "key": new_key(), "files": moved}
        write_atomically(os.path.join(forming, META), json.dumps(meta).encode("utf-8"))
        os.rename(forming, os.path.join(self.batches_dir, "%s-%s" % (moved[0].split(".")[0], tag)))

    def batches(self):
        out = []
        for name in _listdir(self.batches_dir):
            path = os.path.join(self.batches_dir, name)
            try:
                with open(os.path.join(path, META), "rb") as f:
                    meta = json.loads(f.read().decode("utf-8"))
            except FileNotFoundError:
                continue  # dropped meanwhile
            except (OSError, ValueError) as e:
                log.warning("rollwatch: dropping a batch with an unreadable key file: %s", e)
                shutil.rmtree(path, ignore_errors=True)
                continue
            out.append(Batch(path, meta))
        return out

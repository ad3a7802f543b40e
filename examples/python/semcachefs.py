"""semcachefs - a Python client for a semcachefs category, through the mount only.

    from semcachefs import Cache
    cache = Cache("/mnt/cache/code")
    r = cache.lookup("how do I reverse a list in python")
    if not r.hit:
        cache.fill(r, call_your_model(...))
    r = cache.ask("python: reverse a list", llm)   # lookup, llm on a miss, fill

How: a lookup without a context uses a persistent session of the Cache's
pool (taken by one lookup at a time; returned when its Result is closed or
filled): one NAME.query descriptor opened read-write once, on which a pwrite
at offset 0 starts the query and the read from offset 0 runs the lookup and
returns the status line, a newline and the answer (2 FUSE requests), one
NAME.response descriptor on which a pwrite at offset 0 and fsync() store the
answer for that lookup, and one NAME.status read for the stored entry (3
requests). A lookup with a context gets a session of its own: NAME.context
is written first, then NAME.query through the one-descriptor fast path, and
the session is removed when its Result is done. A fill writes NAME.response,
wrong-hit feedback NAME.feedback ("wrong"). All file I/O is in the classes
_Session and _Persistent.

A Result keeps its session while it can still be used (a miss until it is
filled, a hit until feedback_wrong()); close(), a with block, or the Result
being garbage-collected gives it back (a persistent session to the pool, a
session of a context lookup is removed). Cache.close() (or a with block, or
the Cache being collected) removes the pool's sessions; the daemon drops
forgotten ones after its session_ttl once their descriptors are closed.
Errors are SemcacheError, an OSError carrying the daemon's errno and a
message saying what to do.

Standard library only; thread-safe (the pool has a lock; a session serves
one Result at a time); a forked child never uses or removes its parent's
sessions. Not here: retries, streaming, policy changes.
"""

import errno
import itertools
import os
import threading
import weakref

__all__ = ["Cache", "Result", "SemcacheError"]

_READ_CHUNK = 1 << 20
_SUFFIXES = (".query", ".status", ".response", ".context", ".feedback", ".neighbors")
_counter = itertools.count(1)
_counter_lock = threading.Lock()


class SemcacheError(OSError):
    """An errno from the mount with a message that says what to do.

    .errno is the number, .code its name ("EFBIG"), .strerror the message,
    .filename the file the failing call was on.
    """

    @property
    def code(self):
        return errno.errorcode.get(self.errno, "EIO")


def _to_bytes(data, what):
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    if isinstance(data, str):
        return data.encode("utf-8", "surrogateescape")
    raise TypeError("%s must be str or bytes, not %s" % (what, type(data).__name__))


def _limit(category, key):
    """The effective value of KEY from CATEGORY/.policy, for messages."""
    try:
        with open(os.path.join(category, ".policy"), "rb") as f:
            for line in f.read().decode("utf-8", "replace").splitlines():
                if line.startswith(key + ":"):
                    return line.split(":", 1)[1].split("#", 1)[0].strip()
    except OSError:
        pass
    return "?"


# What each errno means at each step of the protocol: (step, errno) -> message
# template with %(cat)s (the category) and %(file)s (the session file).
_MESSAGES = {
    ("open", errno.ENOENT): "category '%(cat)s' does not exist: mkdir it in the mount",
    ("open", errno.EINVAL): "session name '%(file)s' refused by the daemon",
    ("context", errno.EFBIG): "context over the daemon's 1 MiB context limit: shorten it",
    ("query", errno.EFBIG): "query over limits.query_bytes of '%(cat)s' (%(limit)s): "
                            "shorten it or raise the limit in policy.yaml",
    ("query", errno.EINVAL): "empty query: the query must contain more than white space",
    ("fill", errno.ENOENT): "no lookup to fill in '%(file)s' (the session was removed "
                            "or expired after session_ttl): look the query up again",
    ("fill", errno.EFBIG): "answer over limits.response_bytes of '%(cat)s' (%(limit)s): "
                           "nothing was stored",
    ("fill", errno.EINVAL): "empty answer: nothing to store",
    ("fill", errno.ENOSPC): "the cache's store is full: free space, nothing was stored",
    ("fill", errno.ESTALE): "the lookup '%(file)s' answers was replaced, or its files were "
                            "removed, before the answer was stored: nothing was stored; "
                            "look the query up again",
    ("feedback", errno.ENOENT): "'%(file)s' was not a hit: there is no answer to report",
}
_ANY_STEP = {
    errno.ENOTCONN: "the semcachefs mount of '%(cat)s' is gone (its daemon stopped): "
                    "remount it",
    errno.ECONNABORTED: "the semcachefs mount of '%(cat)s' is gone (its daemon stopped "
                        "during the call): remount it",
    errno.EACCES: "permission denied on '%(file)s': ask the owner of category "
                  "'%(cat)s' for read and write access",
    errno.EPERM: "operation not permitted on '%(file)s'",
    errno.ENOTDIR: "'%(file)s' is not a directory of a semcachefs mount",
}


def _error(exc, step, category, path):
    """SemcacheError for OSError exc raised at STEP on PATH."""
    code = exc.errno or errno.EIO
    if step == "lookup":
        step = "query"  # the read reports what the write could not
    msg = _MESSAGES.get((step, code)) or _ANY_STEP.get(code)
    limit = ""
    if msg and "%(limit)s" in msg:
        key = "limits.query_bytes" if step == "query" else "limits.response_bytes"
        limit = _limit(category, key)
    if msg:
        msg = msg % {"cat": category, "file": path, "limit": limit}
    else:
        msg = "%s of '%s' failed: %s" % (step, path, os.strerror(code))
    return SemcacheError(code, msg, path)


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _pwrite_all(fd, data):
    """DATA as the descriptor's new content: the write at offset 0 starts it
    (a write of nothing sends nothing, so an empty one is a truncation)."""
    if not data:
        os.ftruncate(fd, 0)
        return
    view, off = memoryview(data), 0
    while off < len(view):
        off += os.pwrite(fd, view[off:], off)


def _pread_all(fd):
    """Everything from offset 0: a read shorter than asked is the end."""
    parts = [os.pread(fd, _READ_CHUNK, 0)]
    off = len(parts[0])
    while len(parts[-1]) == _READ_CHUNK:
        parts.append(os.pread(fd, _READ_CHUNK, off))
        off += len(parts[-1])
    return b"".join(parts)


class _Session:
    """One session name in one category, used by one lookup: each call opens
    its file by path (open, write, read, close)."""

    def __init__(self, category, name):
        self.category = category
        self.base = os.path.join(category, name)
        self.lock = threading.Lock()
        self.removed = False

    def _put(self, suffix, data, step):
        """Write DATA to NAME.SUFFIX; the daemon commits it at close()."""
        path = self.base + suffix
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        except OSError as e:
            raise _error(e, step if step in ("fill", "feedback") else "open",
                         self.category, path) from e
        try:
            _write_all(fd, data)
        except OSError as e:
            try:
                os.close(fd)  # fails with the same errno: nothing is committed
            except OSError:
                pass
            raise _error(e, step, self.category, path) from e
        try:
            os.close(fd)
        except OSError as e:
            raise _error(e, step, self.category, path) from e

    def _status(self):
        path = self.base + ".status"
        try:
            with open(path, "rb") as f:
                return f.readline().decode("utf-8", "replace").rstrip("\n")
        except OSError as e:
            raise _error(e, "status", self.category, path) from e

    def lookup(self, query, context):
        """Run the lookup; returns the status line + b"\\n" + the answer."""
        if context is not None:
            self._put(".context", context, "context")
        path = self.base + ".query"
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        except OSError as e:
            raise _error(e, "open", self.category, path) from e
        step = "query"
        try:
            _write_all(fd, query)
            step = "lookup"
            parts = []
            off = 0
            while True:
                chunk = os.pread(fd, _READ_CHUNK, off)
                if not chunk:
                    break
                parts.append(chunk)
                off += len(chunk)
        except OSError as e:
            raise _error(e, step, self.category, path) from e
        finally:
            try:
                os.close(fd)
            except OSError:
                pass  # the lookup already ran: its outcome was read
        return b"".join(parts)

    def fill(self, answer):
        self._put(".response", answer, "fill")
        return self._status()

    def feedback_wrong(self):
        self._put(".feedback", b"wrong\n", "feedback")
        return self._status()

    def remove(self):
        """Remove the session's files; errors are ignored (the daemon's
        session_ttl removes what is left)."""
        with self.lock:
            if self.removed:
                return
            self.removed = True
        for suffix in _SUFFIXES:
            try:
                os.unlink(self.base + suffix)
            except OSError:
                pass

    def release(self):
        """Its Result is done with it."""
        self.remove()


class _Persistent(_Session):
    """A session of a Cache's pool, for lookup after lookup without a
    context: its NAME.query (read-write), NAME.response and NAME.status
    descriptors are opened once, when first needed, and kept."""

    def __init__(self, category, name, pool):
        super().__init__(category, name)
        self.pool = pool
        self.pid = os.getpid()
        self.spoiled = False  # NAME.feedback written: not for another lookup
        self.fds = {}

    def _fd(self, suffix, flags, step):
        fd = self.fds.get(suffix)
        if fd is None:
            path = self.base + suffix
            try:
                fd = self.fds[suffix] = os.open(path, flags, 0o600)
            except OSError as e:
                raise _error(e, step, self.category, path) from e
        return fd

    def lookup(self, query, context):
        fd = self._fd(".query", os.O_RDWR | os.O_CREAT, "open")
        step = "query"
        try:
            _pwrite_all(fd, query)
            step = "lookup"
            return _pread_all(fd)
        except OSError as e:
            raise _error(e, step, self.category, self.base + ".query") from e

    def fill(self, answer):
        fd = self._fd(".response", os.O_WRONLY, "fill")
        try:
            _pwrite_all(fd, answer)
            os.fsync(fd)  # 0: the answer is durable
        except OSError as e:
            raise _error(e, "fill", self.category, self.base + ".response") from e
        fd = self._fd(".status", os.O_RDONLY, "status")
        try:
            line = os.pread(fd, 4096, 0).split(b"\n", 1)[0]
        except OSError as e:
            raise _error(e, "status", self.category, self.base + ".status") from e
        return line.decode("utf-8", "replace")

    def feedback_wrong(self):
        self.spoiled = True
        return super().feedback_wrong()

    def release(self):
        self.pool.put(self)

    def remove(self):
        with self.lock:
            if self.removed:
                return
            self.removed = True
            fds, self.fds = self.fds, {}
        for fd in fds.values():
            try:
                os.close(fd)
            except OSError:
                pass
        if self.pid != os.getpid():
            return  # a forked child's copy: the files are its parent's
        for suffix in _SUFFIXES:
            try:
                os.unlink(self.base + suffix)
            except OSError:
                pass


class _Pool:
    """A Cache's idle persistent sessions (at most KEEP are kept)."""

    KEEP = 8

    def __init__(self):
        self.lock = threading.Lock()
        self.free = []   # lock
        self.pid = os.getpid()
        self.closed = False

    def get(self):
        with self.lock:
            if self.pid != os.getpid():
                self.free, self.pid = [], os.getpid()  # forked: the parent's
            return self.free.pop() if self.free else None

    def put(self, s):
        with self.lock:
            keep = (not self.closed and not s.spoiled and not s.removed and
                    s.pid == self.pid == os.getpid() and len(self.free) < self.KEEP)
            if keep:
                self.free.append(s)
        if not keep:
            s.remove()

    def close(self):
        with self.lock:
            free, self.free, self.closed = self.free, [], True
        for s in free:
            s.remove()


def _parse_status(line):
    """("hit"|"miss"|..., {key: value}) from a status line."""
    words = line.split(" ")
    fields = {}
    for w in words[1:]:
        k, sep, v = w.partition("=")
        if sep:
            fields[k] = v
    return words[0], fields


class Result:
    """The outcome of a lookup (or of ask()).

    hit: bool; score: float or None (a hit's cosine similarity); entry: int
    or None (the entry that answered, or the one stored by a fill); response:
    bytes (the answer; b"" on a miss); status: the daemon's status line.
    """

    __slots__ = ("hit", "score", "entry", "response", "status", "query",
                 "context", "_session", "_finalizer", "__weakref__")

    def __init__(self, hit, score, entry, response, status, query=b"",
                 context=None, session=None):
        self.hit = hit
        self.score = score
        self.entry = entry
        self.response = response
        self.status = status
        self.query = query
        self.context = context
        self._session = session
        self._finalizer = weakref.finalize(self, session.release) if session else None

    @property
    def text(self):
        """The response decoded as UTF-8 (invalid bytes replaced)."""
        return self.response.decode("utf-8", "replace")

    def close(self):
        """Give the session back now (fill and feedback_wrong need it)."""
        if self._finalizer:
            self._finalizer()
        self._session = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return "Result(hit=%r, score=%r, entry=%r, response=%r, status=%r)" % (
            self.hit, self.score, self.entry, self.response[:60], self.status)


class Cache:
    """A semcachefs category directory (a directory inside the mount)."""

    def __init__(self, category_dir):
        self.category = os.path.abspath(os.fspath(category_dir))
        try:
            if not os.path.isdir(self.category):
                os.stat(os.path.join(self.category, ""))  # ENOENT / ENOTDIR / ENOTCONN
            os.stat(os.path.join(self.category, ".policy"))
        except OSError as e:
            if e.errno == errno.ENOENT and os.path.isdir(self.category):
                raise SemcacheError(errno.ENOTDIR, "'%s' is not a semcachefs category "
                                    "(mount semcachefs and mkdir the category first)"
                                    % self.category, self.category) from e
            if e.errno == errno.ENOENT:
                raise SemcacheError(errno.ENOENT, "category '%s' does not exist: mkdir it "
                                    "in a semcachefs mount" % self.category,
                                    self.category) from e
            raise _error(e, "open", self.category, self.category) from e
        self._pool = _Pool()
        self._finalizer = weakref.finalize(self, self._pool.close)

    def close(self):
        """Remove the pool's idle sessions (those still held by a Result go
        when it is closed)."""
        self._finalizer()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _session(self, persistent):
        s = self._pool.get() if persistent else None
        if s:
            return s
        with _counter_lock:
            n = next(_counter)
        name = "py-%d-%d-%d-%s" % (os.getpid(), threading.get_ident(), n,
                                   os.urandom(4).hex())
        if persistent:
            return _Persistent(self.category, name, self._pool)
        return _Session(self.category, name)

    def lookup(self, query, context=None):
        """Look QUERY up (str or bytes; CONTEXT too). Returns a Result whose
        session stays open for fill() or feedback_wrong()."""
        q = _to_bytes(query, "query")
        ctx = None if context is None else _to_bytes(context, "context")
        s = self._session(ctx is None)
        try:
            raw = s.lookup(q, ctx)
        except SemcacheError as e:
            s.remove()
            if e.errno != errno.ESTALE:
                raise
            # the session's files were removed under it: once more, anew
            s = self._session(False)
            try:
                raw = s.lookup(q, ctx)
            except BaseException:
                s.remove()
                raise
        except BaseException:
            s.remove()
            raise
        line, _, answer = raw.partition(b"\n")
        status = line.decode("utf-8", "replace")
        word, fields = _parse_status(status)
        if word not in ("hit", "miss"):
            s.remove()
            raise SemcacheError(errno.EIO, "unexpected status %r from '%s': is it a "
                                "semcachefs category?" % (status[:80], s.base + ".query"),
                                s.base + ".query")
        hit = word == "hit"
        return Result(hit, float(fields["score"]) if hit else None,
                      int(fields["entry"]) if hit else None,
                      answer if hit else b"", status, q, ctx, s)

    def fill(self, result_or_query, answer, context=None):
        """Store ANSWER (str or bytes, non-empty) for a Result of lookup(),
        or for a query (str or bytes, with CONTEXT), which is looked up first.
        Returns the status line ("stored entry=N" or "not-stored reason=...").
        The fill is durable when this returns."""
        data = _to_bytes(answer, "answer")
        if isinstance(result_or_query, Result):
            r = result_or_query
        else:
            r = self.lookup(result_or_query, context)
        s = r._session
        if s is None or s.removed:
            raise SemcacheError(errno.ENOENT, "this result's session was closed: fill "
                                "with the query instead", None)
        try:
            status = s.fill(data)
        finally:
            r.close()
        word, fields = _parse_status(status)
        if word == "stored":
            r.entry = int(fields["entry"])
        r.status = status
        return status

    def feedback_wrong(self, result):
        """Report that RESULT (a hit whose session is still open) served a
        wrong answer: the daemon invalidates that entry and counts a false
        hit. Returns the new status line."""
        s = result._session
        if not result.hit:
            raise SemcacheError(errno.ENOENT, "the result was not a hit: there is no "
                                "answer to report", None)
        if s is None or s.removed:
            raise SemcacheError(errno.ENOENT, "this result's session was closed: report "
                                "before close()", None)
        try:
            status = s.feedback_wrong()
        finally:
            result.close()
        result.status = status
        return status

    def ask(self, query, llm, context=None):
        """The cached answer to QUERY, or llm(query) stored and returned.

        llm is called with query as given, only on a miss; an exception it
        raises propagates (nothing is cached); an empty answer is returned
        but not cached. Returns a Result (a hit keeps its session for
        feedback_wrong() until it is closed or collected)."""
        r = self.lookup(query, context)
        if r.hit:
            return r
        try:
            data = _to_bytes(llm(query), "the llm's answer")
        except BaseException:
            r.close()
            raise
        r.response = data
        if data:
            self.fill(r, data)
        else:
            r.close()
        return r

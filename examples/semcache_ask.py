#!/usr/bin/env python3
"""semcache_ask - put a semcachefs cache in front of an LLM, from Python.

As a module:

    from semcache_ask import ask
    answer, hit, status = ask("/mnt/cache/code", "how do I reverse a list?",
                              llm=my_llm, context=None)

ask() looks the question up in a semcachefs category directory; on a hit it
returns the cached answer without calling llm; on a miss it calls
llm(question), stores a non-empty answer in the cache and returns it.

As a command, like semcache-ask:

    semcache_ask.py [-v] [-c CONTEXT] [-q QUESTION] CATEGORY_DIR -- CMD [ARGS...]

Standard library only. A question without a context goes through this
thread's persistent session of the category (kept from one call to the
next): its NAME.query is opened read-write once, a pwrite at offset 0 starts
the question and the read from offset 0 runs the lookup and returns the
status line, a newline and the answer (2 FUSE requests); its NAME.response is
opened once, and a pwrite at offset 0 plus fsync() store the answer (2
more). Its files are removed when the thread ends or the program exits. A
question with a context uses the three-file protocol (plain open()/read()/
write() on a session of its own, removed afterwards). Not here: retries,
streaming, policy changes.
"""

import atexit
import errno
import itertools
import os
import subprocess
import sys
import threading
import weakref

__all__ = ["ask", "SemcacheError"]

_counter = itertools.count(1)
_counter_lock = threading.Lock()
_SUFFIXES = (".context", ".query", ".response", ".status", ".neighbors")
_local = threading.local()     # .kept: {category_dir: _Kept} of this thread
_all_kept = weakref.WeakSet()  # every live _Kept, removed at exit


class SemcacheError(OSError):
    """The cache could not answer or store: not a category, a lookup error."""


def _session_name():
    with _counter_lock:
        n = next(_counter)
    return "py-%d-%d-%d-%s" % (os.getpid(), threading.get_ident(), n,
                               os.urandom(3).hex())


def _to_bytes(text, what):
    if isinstance(text, bytes):
        return text
    if isinstance(text, str):
        return text.encode("utf-8", "surrogateescape")
    raise TypeError("%s must be str or bytes, not %s" % (what, type(text).__name__))


def _write(path, data):
    # The lookup (for .query) or the fill (for .response) runs at close():
    # an OSError from the with block carries the daemon's errno.
    with open(path, "wb") as f:
        f.write(data)


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def _status(session):
    return _read(session + ".status").decode("utf-8", "replace").split("\n", 1)[0]


def _cleanup(session):
    for suffix in _SUFFIXES:
        try:
            os.unlink(session + suffix)
        except OSError:
            pass


class _Kept:
    """A thread's persistent session in one category: NAME.query opened
    read-write and NAME.response opened for writing, each once."""

    def __init__(self, category_dir):
        self.session = os.path.join(category_dir, _session_name())
        self.pid = os.getpid()
        self.rfd = None
        self.qfd = os.open(self.session + ".query", os.O_RDWR | os.O_CREAT, 0o600)
        _all_kept.add(self)

    def lookup(self, q):
        """The status line, a newline and the answer."""
        if q:
            done = 0
            while done < len(q):  # a write at offset 0 starts the question
                done += os.pwrite(self.qfd, q[done:], done)
        else:
            os.ftruncate(self.qfd, 0)  # an empty write would send nothing
        out = chunk = os.pread(self.qfd, 1 << 20, 0)
        while len(chunk) == 1 << 20:  # a short read is the end
            chunk = os.pread(self.qfd, 1 << 20, len(out))
            out += chunk
        return out

    def fill(self, answer):
        """Store answer for the last lookup; durable when this returns."""
        if self.rfd is None:
            self.rfd = os.open(self.session + ".response", os.O_WRONLY)
        done = 0
        while done < len(answer):
            done += os.pwrite(self.rfd, answer[done:], done)
        os.fsync(self.rfd)

    def close(self):
        for fd in (self.qfd, self.rfd):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.qfd = self.rfd = None
        if self.pid == os.getpid():  # a forked child leaves its parent's files
            _cleanup(self.session)

    def __del__(self):
        if self.qfd is not None:
            self.close()


@atexit.register
def _close_all_kept():
    for k in list(_all_kept):
        if k.qfd is not None:
            k.close()


def _kept(category_dir, fresh=False):
    """This thread's persistent session of category_dir (a new one if fresh
    or if this process was forked from the one that made it)."""
    kept = getattr(_local, "kept", None)
    if kept is None:
        kept = _local.kept = {}
    k = kept.get(category_dir)
    if k is not None and (fresh or k.pid != os.getpid()):
        if k.pid == os.getpid():
            k.close()
        k = None
    if k is None:
        k = kept[category_dir] = _Kept(category_dir)
    return k


def _ask_kept(category_dir, q, question, llm, as_result):
    """ask() without a context, on this thread's persistent session."""
    k = None
    for attempt in (1, 2):
        try:
            k = _kept(category_dir, fresh=attempt == 2)
            raw = k.lookup(q)
            break
        except OSError as e:
            if e.errno == errno.ESTALE and attempt == 1:
                continue  # its files were removed under it: a new session
            where = category_dir if k is None else k.session + ".query"
            raise SemcacheError(e.errno, "lookup in %r failed: %s"
                                % (where, e.strerror), where) from e
    line, _, answer = raw.partition(b"\n")
    status = line.decode("utf-8", "replace")
    word = status.split(" ", 1)[0]
    if word == "hit":
        return as_result(answer), True, status
    if word != "miss":
        raise SemcacheError(errno.EIO, "lookup failed: %s" % status, k.session + ".query")
    answer = _to_bytes(llm(question), "the llm's answer")
    if answer:
        try:
            k.fill(answer)
        except OSError as e:
            err = SemcacheError(e.errno, "could not cache the answer: %s"
                                % e.strerror, k.session + ".response")
            err.answer = as_result(answer)
            raise err from e
        status = _status(k.session)
    return as_result(answer), False, status


def ask(category_dir, question, llm, context=None):
    """Ask the cache in category_dir, then llm on a miss.

    question: str or bytes. llm: a callable question -> answer (str or
    bytes); it is called with question as given, only on a miss, and an
    exception it raises propagates (nothing is cached). context: optional
    str or bytes; answers stored with a context only hit the same context.

    Returns (answer, hit, status): answer has the type of question (bytes in,
    bytes out; str answers are UTF-8 with surrogateescape, so any bytes
    survive); hit is True when the answer came from the cache; status is
    the session's last status line ("hit score=...", "stored entry=N",
    "miss ..." when nothing was stored).

    Raises SemcacheError when category_dir is not a semcachefs category or
    the lookup reports an error, and OSError (with the daemon's errno) when
    writing the query fails, e.g. EINVAL for an empty question. A failed
    fill raises SemcacheError too; its .answer holds the LLM's answer.
    """
    category_dir = os.fspath(category_dir)
    want_bytes = isinstance(question, bytes)
    q = _to_bytes(question, "question")
    if not os.path.isdir(category_dir) or \
            not os.path.isfile(os.path.join(category_dir, ".policy")):
        raise SemcacheError(errno.ENOTDIR,
                            "%r is not a semcachefs category (mount semcachefs "
                            "and mkdir the category first)" % category_dir,
                            category_dir)

    def as_result(data):
        return data if want_bytes else data.decode("utf-8", "surrogateescape")

    if context is None:
        return _ask_kept(category_dir, q, question, llm, as_result)
    session = os.path.join(category_dir, _session_name())
    try:
        if context is not None:
            _write(session + ".context", _to_bytes(context, "context"))
        try:
            _write(session + ".query", q)
        except OSError as e:
            raise SemcacheError(e.errno, "lookup of %r failed: %s"
                                % (session + ".query", e.strerror),
                                session + ".query") from e
        status = _status(session)
        word = status.split(" ", 1)[0]
        if word == "hit":
            return as_result(_read(session + ".response")), True, status
        if word != "miss":
            raise SemcacheError(errno.EIO, "lookup failed: %s" % status,
                                session + ".status")

        answer = _to_bytes(llm(question), "the llm's answer")
        if answer:
            try:
                _write(session + ".response", answer)
            except OSError as e:
                err = SemcacheError(e.errno, "could not cache the answer: %s"
                                    % e.strerror, session + ".response")
                err.answer = as_result(answer)
                raise err from e
            status = _status(session)
        return as_result(answer), False, status
    finally:
        _cleanup(session)


class _CommandFailed(Exception):
    def __init__(self, returncode, output):
        super().__init__("exit status %d" % returncode)
        self.returncode = returncode
        self.output = output


def _usage(out):
    out.write(
        "usage: semcache_ask.py [-v] [-c CONTEXT] [-q QUESTION] CATEGORY_DIR"
        " -- CMD [ARGS...]\n\n"
        "Ask the semcachefs category CATEGORY_DIR before running CMD (the\n"
        "question on its stdin). A hit prints the cached answer (exit 0); a\n"
        "miss prints CMD's output, caches it when CMD exits 0 with output,\n"
        "and exits with CMD's status. Exit 2: bad usage or not a category;\n"
        "1: the cache reported an error.\n\n"
        "  -q QUESTION  the question (default: stdin)\n"
        "  -c CONTEXT   conversation context\n"
        "  -v           print the cache's status line on stderr\n"
        "  -h           print this help\n")


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    prog = "semcache_ask.py"
    context = question = None
    verbose = False

    def fail(msg, code):
        sys.stderr.write("%s: %s\n" % (prog, msg))
        return code

    while argv and argv[0].startswith("-") and argv[0] != "--":
        opt = argv.pop(0)
        if opt == "-h":
            _usage(sys.stdout)
            return 0
        if opt == "-v":
            verbose = True
        elif opt in ("-c", "-q"):
            if not argv:
                return fail("option %s needs an argument (see %s -h)" % (opt, prog), 2)
            if opt == "-c":
                context = argv.pop(0)
            else:
                question = argv.pop(0)
        else:
            return fail("unknown option %s (see %s -h)" % (opt, prog), 2)
    if not argv or argv[0] == "--":
        return fail("missing CATEGORY_DIR (see %s -h)" % prog, 2)
    category_dir = argv.pop(0)
    if argv and argv[0] == "--":
        argv.pop(0)
    if not argv:
        return fail("missing CMD after '--' (see %s -h)" % prog, 2)
    cmd = argv

    if question is None:
        q = sys.stdin.buffer.read()
    else:
        q = os.fsencode(question) + b"\n"

    def run_llm(text):
        try:
            p = subprocess.run(cmd, input=text, stdout=subprocess.PIPE)
        except OSError as e:
            sys.stderr.write("%s: cannot run %s: %s\n" % (prog, cmd[0], e.strerror))
            raise _CommandFailed(127 if e.errno == errno.ENOENT else 126, b"")
        if p.returncode != 0:
            code = p.returncode if p.returncode > 0 else 128 - p.returncode
            raise _CommandFailed(code, p.stdout)
        return p.stdout

    out = sys.stdout.buffer
    try:
        answer, hit, status = ask(category_dir, q, run_llm,
                                  None if context is None else os.fsencode(context))
    except _CommandFailed as e:
        out.write(e.output)
        out.flush()
        return fail("%s exited with status %d; answer not cached" % (cmd[0], e.returncode),
                    e.returncode)
    except SemcacheError as e:
        if hasattr(e, "answer"):
            out.write(e.answer)
            out.flush()
            fail("warning: %s" % e.strerror, 0)
            return 0
        return fail(e.strerror, 2 if e.errno == errno.ENOTDIR else 1)
    if verbose:
        sys.stderr.write("%s: %s\n" % (prog, status))
    out.write(answer)
    out.flush()
    if not hit and not answer:
        fail("%s printed nothing; answer not cached" % cmd[0], 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())

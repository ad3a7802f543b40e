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

Only plain open()/read()/write() on the session files, standard library only.
Every call uses its own session name (pid, thread id, a counter) and removes
its session files afterwards. Not here: retries, streaming, policy changes.
"""

import errno
import itertools
import os
import subprocess
import sys
import threading

__all__ = ["ask", "SemcacheError"]

_counter = itertools.count(1)
_counter_lock = threading.Lock()
_SUFFIXES = (".context", ".query", ".response", ".status", ".neighbors")


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

"""Tests of semcachefs.py against a real mount.

SEMCACHE_TEST_MNT names the mount root (tests/90-clients.bats mounts a fresh
daemon and sets it); each test makes its own category. The test that kills
the daemon runs only when SEMCACHE_TEST_DAEMON_PID is set too.

    SEMCACHE_TEST_MNT=/mnt/cache python3 -m unittest -v test_semcachefs
"""

import errno
import multiprocessing
import os
import signal
import sys
import threading
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from semcachefs import Cache, Result, SemcacheError  # noqa: E402

MNT = os.environ.get("SEMCACHE_TEST_MNT")
Q = "how do I reverse a list in python"
P = "python: reverse a list"  # a paraphrase of Q that hits at the default threshold


def session_files(d):
    return sorted(n for n in os.listdir(d)
                  if n not in ("entries", "policy.yaml") and not n.startswith("."))


@unittest.skipUnless(MNT, "needs SEMCACHE_TEST_MNT (a semcachefs mount; see tests/90-clients.bats)")
class Base(unittest.TestCase):
    def setUp(self):
        self.dir = os.path.join(MNT, "t" + uuid.uuid4().hex[:10])
        os.mkdir(self.dir)
        self.cache = Cache(self.dir)

    def policy(self, text):
        with open(os.path.join(self.dir, "policy.yaml"), "w") as f:
            f.write(text)


class Protocol(Base):
    def test_miss_fill_then_exact_hit_with_identical_bytes(self):
        r = self.cache.lookup(Q)
        self.assertEqual((r.hit, r.score, r.entry, r.response, r.status),
                         (False, None, None, b"", "miss"))
        self.assertRegex(self.cache.fill(r, "reversed(xs)\n"), r"^stored entry=\d+$")
        self.assertEqual(r.status, "stored entry=%d" % r.entry)
        h = self.cache.lookup(Q)
        self.assertEqual((h.hit, h.score, h.entry, h.response),
                         (True, 1.0, r.entry, b"reversed(xs)\n"))
        self.assertRegex(h.status, r"^hit score=1\.000 entry=%d age=\d+ match=exact$" % r.entry)

    def test_paraphrase_is_a_semantic_hit(self):
        self.cache.fill(Q, "reversed(xs)")
        h = self.cache.lookup(P)
        self.assertTrue(h.hit)
        self.assertLess(h.score, 1.0)
        self.assertGreaterEqual(h.score, 0.9)
        self.assertEqual(h.response, b"reversed(xs)")
        self.assertTrue(h.status.endswith(" match=semantic"), h.status)

    def test_unrelated_query_misses(self):
        self.cache.fill(Q, "reversed(xs)")
        self.assertFalse(self.cache.lookup("what is the boiling point of water").hit)

    def test_contexts_keep_answers_apart(self):
        self.cache.fill("what did I just say", "A's answer", context="conversation A")
        self.assertFalse(self.cache.lookup("what did I just say", context="conversation B").hit)
        self.assertFalse(self.cache.lookup("what did I just say").hit)
        h = self.cache.lookup("what did I just say", context=b"conversation A")
        self.assertEqual((h.hit, h.response), (True, b"A's answer"))

    def test_bytes_in_bytes_out_invalid_utf8_answer(self):
        answer = b"\xff\xfe\x00\x01 not utf-8 \xc3\x28\n\n"
        query = "caf\u00e9 \u2615 how do I brew it"
        self.assertRegex(self.cache.fill(query, answer), r"^stored entry=\d+$")
        h = self.cache.lookup(query.encode("utf-8"))
        self.assertEqual(h.response, answer)
        self.assertEqual(h.text, answer.decode("utf-8", "replace"))
        with open(os.path.join(self.dir, "entries", str(h.entry), "query"), "rb") as f:
            self.assertEqual(f.read(), query.encode("utf-8"))

    def test_large_answer_round_trips(self):
        answer = os.urandom(3 << 20)  # several FUSE reads
        self.cache.fill(Q, answer)
        self.assertEqual(self.cache.lookup(Q).response, answer)

    def test_fill_with_a_query_and_context(self):
        self.assertRegex(self.cache.fill(Q, "ctx answer", context="c1"), r"^stored entry=\d+$")
        self.assertEqual(self.cache.lookup(Q, context="c1").response, b"ctx answer")
        self.assertFalse(self.cache.lookup(Q).hit)

    def test_sessions_are_removed_after_fill_close_and_collection(self):
        r = self.cache.lookup(Q, context="c")
        self.assertEqual(len(session_files(self.dir)), 5)  # context neighbors query status response
        self.cache.fill(r, "answer")
        self.assertEqual(session_files(self.dir), [])
        with self.cache.lookup(Q, context="c") as h:
            self.assertTrue(h.hit)
        self.assertEqual(session_files(self.dir), [])
        h = self.cache.lookup(Q, context="c")
        self.assertNotEqual(session_files(self.dir), [])
        del h  # reference counting collects it here
        self.assertEqual(session_files(self.dir), [])

    def test_a_closed_result_cannot_be_filled(self):
        r = self.cache.lookup(Q)
        r.close()
        with self.assertRaises(SemcacheError) as cm:
            self.cache.fill(r, "late")
        self.assertEqual(cm.exception.code, "ENOENT")


class Ask(Base):
    def test_llm_runs_only_on_a_miss(self):
        calls = []

        def llm(q):
            calls.append(q)
            return "answer to [%s]" % q

        r = self.cache.ask(Q, llm)
        self.assertEqual((r.hit, r.response, r.status),
                         (False, ("answer to [%s]" % Q).encode(), "stored entry=%d" % r.entry))
        r = self.cache.ask(P, llm)
        self.assertEqual((r.hit, r.response), (True, ("answer to [%s]" % Q).encode()))
        self.assertEqual(calls, [Q])
        self.assertEqual(session_files(self.dir), [os.path.basename(r._session.base) + s
                                                   for s in (".neighbors", ".query", ".response",
                                                             ".status")])

    def test_llm_exception_propagates_and_nothing_is_cached(self):
        def bad(q):
            raise RuntimeError("model down")

        with self.assertRaisesRegex(RuntimeError, "model down"):
            self.cache.ask(Q, bad)
        self.cache.close()  # its idle persistent session
        self.assertEqual(session_files(self.dir), [])
        self.assertFalse(self.cache.lookup(Q).hit)

    def test_empty_llm_answer_is_returned_not_cached(self):
        r = self.cache.ask(Q, lambda q: b"")
        self.assertEqual((r.hit, r.response, r.status), (False, b"", "miss"))
        self.assertFalse(self.cache.lookup(Q).hit)

    def test_bytes_answer_with_any_bytes(self):
        blob = bytes(range(256))
        self.assertEqual(self.cache.ask(b"dump all bytes", lambda q: blob).response, blob)
        self.assertEqual(self.cache.ask(b"dump all bytes", lambda q: b"never").response, blob)


class Feedback(Base):
    def test_wrong_hit_is_invalidated(self):
        self.cache.fill(Q, "a wrong answer")
        h = self.cache.lookup(P)
        self.assertTrue(h.hit)
        status = self.cache.feedback_wrong(h)
        self.assertEqual(status, "miss reason=reported wrong (entry %d invalidated)" % h.entry)
        self.assertFalse(self.cache.lookup(Q).hit)
        with open(os.path.join(self.dir, ".stats")) as f:
            self.assertIn("false_hits: 1\n", f.read())
        self.cache.close()
        self.assertEqual(session_files(self.dir), [])

    def test_feedback_on_a_miss_is_enoent(self):
        r = self.cache.lookup(Q)
        with self.assertRaises(SemcacheError) as cm:
            self.cache.feedback_wrong(r)
        self.assertEqual(cm.exception.code, "ENOENT")
        self.assertIn("not a hit", cm.exception.strerror)


class Threads(Base):
    def test_eight_threads_get_their_own_answers(self):
        qs = ["how do I reverse a list in python", "what is the capital of france",
              "how many legs does a spider have", "explain tcp slow start",
              "who wrote war and peace", "what is the speed of light in vacuum",
              "how do vaccines train the immune system", "why is the sky blue"]
        calls = {}
        lock = threading.Lock()
        errors = []

        def llm(q):
            with lock:
                calls[q] = calls.get(q, 0) + 1
            return ("answer to [%s]" % q).encode()

        def worker(i):
            try:
                for rnd in range(20):
                    q = qs[(i + rnd) % len(qs)]
                    got = self.cache.ask(q, llm, context="ctx %d" % (rnd % 2))
                    if got.response != ("answer to [%s]" % q).encode():
                        errors.append((q, got.response))
                    got.close()
            except Exception as e:  # reported below
                errors.append(repr(e))

        ts = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        self.assertEqual(errors, [])
        # each (query, context) misses at least once; concurrent first asks
        # may both miss, never more than one per thread
        self.assertEqual(sorted(calls), sorted(qs))
        for q, n in calls.items():
            self.assertTrue(2 <= n <= 16, (q, n))
        self.assertEqual(session_files(self.dir), [])


def fuse_requests():
    with open(os.path.join(MNT, ".stats")) as f:
        for line in f:
            if line.startswith("fuse_requests: "):
                return int(line.split()[1])


class Persistent(Base):
    """Lookups without a context share a pool of persistent sessions."""

    def session_of(self, r):
        name = os.path.basename(r._session.base)
        return [name + s for s in (".neighbors", ".query", ".response", ".status")]

    def test_lookups_and_fills_reuse_one_session(self):
        qs = ["how do I reverse a list in python", "what is the capital of france",
              "how many legs does a spider have"]
        for q in qs:
            r = self.cache.lookup(q)
            self.assertFalse(r.hit)
            self.assertRegex(self.cache.fill(r, "answer to " + q), r"^stored entry=\d+$")
        for q in qs:
            h = self.cache.lookup(q)
            self.assertEqual((h.hit, h.response), (True, ("answer to " + q).encode()))
            files = self.session_of(h)
            h.close()
        self.assertEqual(session_files(self.dir), files)  # one session did it all
        self.cache.close()
        self.assertEqual(session_files(self.dir), [])

    def test_two_requests_a_lookup_three_a_fill(self):
        self.cache.fill(Q, "warm-up")  # opens the session's descriptors
        a = fuse_requests()
        cost = fuse_requests() - a  # reading .stats itself
        for i in range(4):
            before = fuse_requests()
            r = self.cache.lookup("question %d about request counts" % i)
            lookup = fuse_requests() - before - cost
            before = fuse_requests()
            self.cache.fill(r, "answer %d" % i)
            fill = fuse_requests() - before - cost
            self.assertEqual((i, lookup, fill), (i, 2, 3))  # pwrite+pread; pwrite+fsync+pread

    def test_session_files_removed_under_it(self):
        self.cache.fill(Q, "reversed(xs)")
        h = self.cache.lookup(Q)
        files = self.session_of(h)
        h.close()
        for f in files:
            os.unlink(os.path.join(self.dir, f))
        h = self.cache.lookup(P)  # ESTALE on the old session: a new one answers
        self.assertEqual((h.hit, h.response), (True, b"reversed(xs)"))

    def test_a_forked_child_never_uses_its_parents_session(self):
        self.cache.fill(Q, "reversed(xs)")
        h = self.cache.lookup(Q)
        files = self.session_of(h)
        h.close()
        ctx = multiprocessing.get_context("fork")
        out = ctx.Queue()
        p = ctx.Process(target=_child_with, args=(self.cache, out))
        p.start()
        name, answer = out.get(timeout=60)
        p.join(60)
        self.assertEqual((p.exitcode, answer), (0, b"reversed(xs)"))
        self.assertNotEqual(name + ".query", files[1])
        self.assertEqual(session_files(self.dir), files)  # the parent's, intact
        h = self.cache.lookup(Q)
        self.assertEqual((h.hit, self.session_of(h)), (True, files))


def _child_with(cache, out):
    r = cache.lookup(P)
    out.put((os.path.basename(r._session.base), r.response))
    r.close()
    cache.close()


def _child(d, q, out):
    c = Cache(d)
    out.put((os.getpid(), c.ask(q, lambda x: "answer to [%s]" % x).response))


class Processes(Base):
    def test_forked_processes_get_their_own_answers(self):
        ctx = multiprocessing.get_context("fork")
        out = ctx.Queue()
        qs = ["question number %d about widgets" % i for i in range(4)]
        ps = [ctx.Process(target=_child, args=(self.dir, q, out)) for q in qs]
        for p in ps:
            p.start()
        got = sorted(out.get(timeout=60)[1] for _ in ps)
        for p in ps:
            p.join(60)
            self.assertEqual(p.exitcode, 0)
        self.assertEqual(got, sorted(("answer to [%s]" % q).encode() for q in qs))
        self.assertEqual(session_files(self.dir), [])


class BadInput(Base):
    def assertErrno(self, cm, code, text):
        self.assertEqual(cm.exception.code, code)
        self.assertIsInstance(cm.exception, OSError)
        self.assertIn(text, cm.exception.strerror)

    def test_empty_query(self):
        for q in ("", b"", "  \n\t "):
            with self.assertRaises(SemcacheError) as cm:
                self.cache.lookup(q)
            self.assertErrno(cm, "EINVAL", "empty query")
        self.assertEqual(session_files(self.dir), [])

    def test_oversize_query(self):
        self.policy("limits: {query_bytes: 1KiB}\n")
        self.assertFalse(self.cache.lookup("y" * 1024).hit)  # at the limit: fine
        with self.assertRaises(SemcacheError) as cm:
            self.cache.lookup("z" * 1025)
        self.assertErrno(cm, "EFBIG", "query over limits.query_bytes of '%s' (1KiB)" % self.dir)
        self.cache.close()
        self.assertEqual(session_files(self.dir), [])

    def test_oversize_and_empty_answer(self):
        self.policy("limits: {response_bytes: 16}\n")
        with self.assertRaises(SemcacheError) as cm:
            self.cache.fill(Q, "x" * 17)
        self.assertErrno(cm, "EFBIG", "answer over limits.response_bytes")
        with self.assertRaises(SemcacheError) as cm:
            self.cache.fill(Q, b"")
        self.assertErrno(cm, "EINVAL", "empty answer")
        self.assertFalse(self.cache.lookup(Q).hit)
        self.cache.close()
        self.assertEqual(session_files(self.dir), [])

    def test_category_that_does_not_exist(self):
        with self.assertRaises(SemcacheError) as cm:
            Cache(os.path.join(MNT, "no-such-category"))
        self.assertErrno(cm, "ENOENT", "does not exist")
        os.rmdir(self.dir)  # removed after the Cache was made
        with self.assertRaises(SemcacheError) as cm:
            self.cache.lookup(Q)
        self.assertErrno(cm, "ENOENT", "category '%s' does not exist" % self.dir)

    def test_directory_outside_semcachefs(self):
        plain = os.path.join(os.environ.get("TMPDIR", "/tmp"), "plain-" + uuid.uuid4().hex)
        os.mkdir(plain)
        try:
            with self.assertRaises(SemcacheError) as cm:
                Cache(plain)
            self.assertErrno(cm, "ENOTDIR", "is not a semcachefs category")
            self.assertEqual(os.listdir(plain), [])
        finally:
            os.rmdir(plain)

    def test_wrong_types(self):
        with self.assertRaises(TypeError):
            self.cache.lookup(42)
        with self.assertRaises(TypeError):
            self.cache.fill(Q, None)


@unittest.skipUnless(MNT and os.environ.get("SEMCACHE_TEST_DAEMON_PID"),
                     "needs SEMCACHE_TEST_DAEMON_PID (this test kills the daemon)")
class MountGone(Base):
    def test_killed_daemon_is_enotconn(self):
        cache = Cache(self.dir)
        self.cache.fill(Q, "answer")
        os.kill(int(os.environ["SEMCACHE_TEST_DAEMON_PID"]), signal.SIGKILL)
        deadline = time.monotonic() + 20
        while True:
            try:
                cache.lookup(Q)
            except SemcacheError as e:
                if e.errno not in (errno.ENOTCONN, errno.ECONNABORTED):  # aborted: in flight
                    raise
                self.assertIn("mount of '%s' is gone" % self.dir, e.strerror)
                if e.errno == errno.ENOTCONN:
                    break
            self.assertLess(time.monotonic(), deadline, "the daemon did not die")
            time.sleep(0.02)
        with self.assertRaises(SemcacheError) as cm:
            Cache(self.dir)
        self.assertEqual(cm.exception.code, "ENOTCONN")


if __name__ == "__main__":
    unittest.main()

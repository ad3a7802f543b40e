#!/usr/bin/env python3
"""isolation_bench.py - lookups in one category while another category's
slow work and queued writers run, for one or more semcachefs builds side
by side in one run.

For each daemon (--daemon LABEL=PATH, repeatable; rounds alternate between
them): mount a fresh store, start tests/tools/fake_embed_server.py (its
model "slow" answers after --slow seconds), give category slow/ that http
embedder and category fast/ one stored answer. Then, per round: keep three
lookups in slow/ waiting on the embedder, queue a mkdir and a policy write
(the writers that, with one engine lock for everything, held up every new
reader), and time --lookups exact hits in fast/ through the file protocol
(write NAME.query, read NAME.status: two opens, one write, one read, one
close each) from --clients threads, back to back. Prints per daemon the p50, p99 and max of those
hits over all rounds, and how long the mkdir + policy write took.

  python3 tests/bench/isolation_bench.py --daemon old=OLD/fs/semcachefs \\
      --daemon new=build/fs/semcachefs --rounds 5 --lookups 200 --slow 2

Needs root or a user who may mount FUSE; uses loopback only. Not run by the
test suite (tests/57-isolation.bats checks the same with generous bounds).
"""
import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER = os.path.join(HERE, "..", "tools", "fake_embed_server.py")


def wait_for(pred, secs, what):
    end = time.monotonic() + secs
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.02)
    sys.exit(f"isolation_bench: timed out waiting for {what}")


def mounted(mnt):
    with open("/proc/self/mounts") as f:
        return any(line.split()[1] == mnt for line in f)


def write_file(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def read_file(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.read(fd, 4096).decode(errors="replace")
    finally:
        os.close(fd)


def ask(mnt, cat, name, query):
    write_file(f"{mnt}/{cat}/{name}.query", query + "\n")
    return read_file(f"{mnt}/{cat}/{name}.status")


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


class Mount:
    def __init__(self, label, daemon, port, work):
        self.label, self.work = label, work
        self.mnt = os.path.join(work, "mnt")
        os.makedirs(self.mnt)
        self.log = open(os.path.join(work, "daemon.log"), "w")
        self.proc = subprocess.Popen(
            [daemon, "-f", "-o", f"store={work}/store", self.mnt],
            stdout=self.log, stderr=self.log)
        wait_for(lambda: mounted(self.mnt) or self.proc.poll() is not None, 20,
                 f"{label} to mount")
        if self.proc.poll() is not None:
            sys.exit(f"isolation_bench: {label} did not mount (log: {work}/daemon.log)")
        for d in ("fast", "slow"):
            os.mkdir(f"{self.mnt}/{d}")
        ask(self.mnt, "fast", "q", "the question everyone asks")
        write_file(f"{self.mnt}/fast/q.response", "the answer")
        write_file(f"{self.mnt}/slow/policy.yaml",
                   "embedder: http\nhttp: {url: \"http://127.0.0.1:%d/v1/embeddings\", "
                   "model: slow, dimensions: 16, timeout: 60s, retries: 0}\n" % port)

    def close(self):
        subprocess.run(["fusermount3", "-u", self.mnt], check=False)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def one_round(m, rnd, lookups, clients):
    """Times lookups exact hits in fast/ with slow work and writers queued."""
    slow = []
    for i in range(3):
        t = threading.Thread(target=ask, args=(m.mnt, "slow", f"s{rnd}_{i}",
                                               f"a question the slow model embeds {rnd} {i}"))
        t.start()
        slow.append(t)
    time.sleep(0.2)  # the slow lookups are at the embedder
    done = {}

    def writer(kind, fn):
        t0 = time.monotonic()
        fn()
        done[kind] = time.monotonic() - t0

    w = [threading.Thread(target=writer, args=("mkdir", lambda: os.mkdir(f"{m.mnt}/new{rnd}"))),
         threading.Thread(target=writer, args=("policy", lambda: write_file(
             f"{m.mnt}/fast/policy.yaml", "threshold: 0.9%d\n" % (rnd % 10))))]
    t_writers = time.monotonic()
    for t in w:
        t.start()
    times, bad = [], []

    def prober(c):
        for i in range(lookups // clients):
            t0 = time.perf_counter()
            s = ask(m.mnt, "fast", f"p{rnd}_{c}_{i % 4}", "the question everyone asks")
            times.append((time.perf_counter() - t0) * 1000)
            if not s.startswith("hit"):
                bad.append(s.strip())

    probes = [threading.Thread(target=prober, args=(c,)) for c in range(clients)]
    for t in probes:
        t.start()
    for t in probes:
        t.join()
    if bad:
        sys.exit(f"isolation_bench: {m.label}: expected hits, got '{bad[0]}'")
    for t in w:
        t.join()
    writers_ms = (time.monotonic() - t_writers) * 1000
    for t in slow:
        t.join()
    return times, writers_ms


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--daemon", action="append", required=True, metavar="LABEL=PATH")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--lookups", type=int, default=200)
    ap.add_argument("--slow", type=float, default=2.0, help="seconds per slow embedding")
    ap.add_argument("--clients", type=int, default=4, help="threads timing hits at once")
    a = ap.parse_args()
    daemons = []
    for d in a.daemon:
        if "=" not in d:
            ap.error(f"--daemon '{d}': want LABEL=PATH")
        label, path = d.split("=", 1)
        daemons.append((label, os.path.abspath(path)))
    top = tempfile.mkdtemp(prefix="semcache-isolation-")
    env = dict(os.environ, FAKE_EMBED_SLOW_S=str(a.slow))
    out = open(os.path.join(top, "server.out"), "w+")
    server = subprocess.Popen([sys.executable, SERVER], stdout=out, stderr=subprocess.DEVNULL,
                              env=env)
    wait_for(lambda: os.path.getsize(out.name) > 0, 10, "the embedding server")
    with open(out.name) as f:
        port = int(f.readline())
    mounts = []
    try:
        for label, path in daemons:
            work = os.path.join(top, label)
            os.makedirs(work)
            mounts.append(Mount(label, path, port, work))
        res = {m.label: ([], []) for m in mounts}
        for rnd in range(a.rounds):
            for m in mounts:  # alternate: the same machine state for both
                times, w = one_round(m, rnd, a.lookups, a.clients)
                res[m.label][0].extend(times)
                res[m.label][1].append(w)
        print(f"# {a.rounds} rounds x {a.lookups} exact hits in fast/ from {a.clients} threads "
              f"while slow/'s embedder takes {a.slow:g} s (3 lookups waiting) and a mkdir + "
              f"policy write are queued")
        print("| daemon | hit p50 ms | hit p99 ms | hit max ms | hits over 50 ms | "
              "mkdir + policy write ms (median) |")
        print("|---|---|---|---|---|---|")
        for m in mounts:
            t, w = res[m.label]
            print(f"| {m.label} | {statistics.median(t):.2f} | {pct(t, 99):.2f} | {max(t):.2f} "
                  f"| {sum(x > 50 for x in t)} of {len(t)} | {statistics.median(w):.0f} |")
    finally:
        for m in mounts:
            m.close()
        server.send_signal(signal.SIGTERM)
        server.wait()
        shutil.rmtree(top, ignore_errors=True)


if __name__ == "__main__":
    main()

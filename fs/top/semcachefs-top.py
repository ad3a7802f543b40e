#!/usr/bin/env python3
"""semcachefs-top - a live view of a semcachefs mount, like varnishstat.

Reads MOUNTPOINT/.stats (every category) and each category's .stats through
the mount, walking the categories with readdir, and shows per category:
entries, lookups, lookups per second, hit rate, exact and semantic hits,
p50/p99 lookup time inside the daemon, time saved (categories whose policy
sets llm_cost_ms) and evictions. It redraws every -i SECS seconds with plain
ANSI (no curses; on TERM=dumb, or when stdout is not a terminal, frames are
printed one after another) until q or Ctrl-C; -1 prints one table for
scripts and exits.

Python 3 standard library only: the view only reads small text files once a
second, so it needs none of the daemon's libraries. It never writes to the
mount and opens nothing but .stats and (with -k) .policy files. A category
the caller may not read (EACCES) is shown as such, not skipped silently.
"""
import argparse
import os
import re
import select
import signal
import sys
import time

# The directories of a category that are not categories themselves.
NOT_CATEGORIES = {"entries", "lost+found"}

COLUMNS = [  # (header, width)
    ("CATEGORY", 0), ("ENTRIES", 8), ("LOOKUPS", 9), ("LK/S", 7), ("HIT%", 6),
    ("EXACT", 7), ("SEMANTIC", 8), ("P50_US", 7), ("P99_US", 7),
    ("SAVED_S", 8), ("EVICTED", 7),
]


def read_kv(path):
    """A 'key: value' file as a dict (values as strings)."""
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key.strip()] = value.strip()
    return out


def categories(mnt):
    """Every category path under mnt ('/code', '/code/py', ...), depth first
    in name order; iterative, so no depth of nesting exhausts the stack."""
    found = []
    todo = ["/"]
    while todo:
        rel = todo.pop()
        if rel != "/":
            found.append(rel)  # an unreadable category still has its own row
        try:
            with os.scandir(os.path.join(mnt, rel.lstrip("/"))) as it:
                names = sorted(e.name for e in it if e.is_dir(follow_symlinks=False))
        except OSError:
            continue
        children = [rel.rstrip("/") + "/" + n for n in names
                    if not n.startswith(".") and n not in NOT_CATEGORIES]
        todo.extend(reversed(children))
    return found


def printable(text):
    """text with control characters (a category name is anyone's choice:
    it could carry terminal escapes) shown as \\xNN."""
    return "".join(c if c.isprintable() else "\\x%02x" % ord(c) if ord(c) < 256
                   else "\\u%04x" % ord(c) for c in text)


def policy_value(line_value):
    """'0.9                # default' -> '0.9' (a .policy line's value)."""
    m = re.match(r"^(.*?)\s+#\s[^#]*$", line_value)
    return (m.group(1) if m else line_value).strip() or "-"


def sample(mnt, keys):
    """{category: stats dict, or an error string}; '' is the whole mount."""
    rows = {"": read_kv(os.path.join(mnt, ".stats"))}
    for cat in categories(mnt):
        base = os.path.join(mnt, cat.lstrip("/"))
        try:
            rows[cat] = read_kv(os.path.join(base, ".stats"))
            if keys:
                pol = read_kv(os.path.join(base, ".policy"))
                for k in keys:
                    rows[cat]["policy:" + k] = policy_value(pol.get(k, "-"))
        except OSError as e:
            rows[cat] = os.strerror(e.errno).lower()
    return rows


def num(stats, key):
    try:
        return float(stats.get(key, ""))
    except ValueError:
        return None


def fmt_int(v):
    return "-" if v is None else "%d" % v


def row_cells(stats, prev, dt, keys):
    lookups = num(stats, "lookups")
    rate = "-"
    if prev is not None and isinstance(prev, dict) and dt > 0 and lookups is not None:
        before = num(prev, "lookups")
        if before is not None:
            rate = "%.1f" % max(0.0, (lookups - before) / dt)
    hit = num(stats, "hit_rate")
    saved = num(stats, "time_saved_ms")
    cells = [fmt_int(num(stats, "entries")), fmt_int(lookups), rate,
             "-" if hit is None else "%.1f" % (hit * 100),
             fmt_int(num(stats, "exact_hits")), fmt_int(num(stats, "semantic_hits")),
             fmt_int(num(stats, "lookup_us_p50")), fmt_int(num(stats, "lookup_us_p99")),
             "-" if saved is None else "%.1f" % (saved / 1000.0),
             fmt_int(num(stats, "evicted"))]
    return cells + [stats.get("policy:" + k, "-") for k in keys]


def render(mnt, rows, prev, dt, keys):
    """The table as a list of lines."""
    names = ["TOTAL"] + [c for c in rows if c]
    width = max(len(printable(n)) for n in names + ["CATEGORY"])
    heads = COLUMNS + [(k.upper(), max(8, len(k))) for k in keys]

    def line(first, cells):
        parts = [printable(first).ljust(width)]
        parts += [printable(c).rjust(w) for c, (_, w) in zip(cells, heads[1:])]
        return "  ".join(parts).rstrip()

    total = dict(rows[""])
    saved = [num(r, "time_saved_ms") for c, r in rows.items() if c and isinstance(r, dict)]
    if any(v is not None for v in saved):  # the root's .stats has no time saved
        total["time_saved_ms"] = str(sum(v for v in saved if v is not None))
    out = ["semcachefs-top  %s  %s  categories: %s" % (
        printable(mnt), time.strftime("%H:%M:%S"), total.get("categories", "?")),
        line("CATEGORY", [h for h, _ in heads[1:]])]
    for name in names:
        stats = total if name == "TOTAL" else rows[name]
        before = (prev or {}).get("" if name == "TOTAL" else name)
        if isinstance(stats, str):
            out.append(line(name, [stats]))
            continue
        out.append(line(name, row_cells(stats, before, dt, keys if name != "TOTAL" else [])))
    return out


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="semcachefs-top",
        description="Live per-category view of a semcachefs mount (q or Ctrl-C quits).",
        epilog="columns: LK/S lookups per second since the last refresh; HIT%% hits "
               "per lookup since mount; P50_US/P99_US lookup time inside the daemon; "
               "SAVED_S time saved (needs llm_cost_ms in the policy).")
    p.add_argument("mountpoint", metavar="MOUNTPOINT")
    p.add_argument("-i", "--interval", metavar="SECS", type=float, default=1.0,
                   help="seconds between refreshes (default 1)")
    p.add_argument("-1", "--once", action="store_true", dest="once",
                   help="print one table and exit (for scripts)")
    p.add_argument("-k", "--key", metavar="KEY", action="append", default=[],
                   help="also show the effective value of policy KEY per category "
                        "(from .policy; repeatable)")
    a = p.parse_args(argv)
    if not 0.1 <= a.interval <= 3600:
        p.error("-i %g: give a number of seconds from 0.1 to 3600" % a.interval)
    return a


class Keys:
    """The terminal in cbreak mode while the view runs (if stdin is one)."""

    def __init__(self):
        self.fd = sys.stdin.fileno() if sys.stdin and sys.stdin.isatty() else None
        self.saved = None

    def __enter__(self):
        if self.fd is not None:
            import termios
            import tty
            self.saved = termios.tcgetattr(self.fd)
            tty.setcbreak(self.fd)
        return self

    def __exit__(self, *exc):
        if self.saved is not None:
            import termios
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)

    def wait_quit(self, secs):
        """Wait up to secs; True when q was pressed."""
        deadline = time.monotonic() + secs
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if self.fd is None:
                time.sleep(left)
                return False
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                ch = os.read(self.fd, 1)
                if ch in (b"q", b"Q", b""):
                    return True


def main(argv):
    a = parse_args(argv)
    mnt = os.path.abspath(a.mountpoint)
    try:
        rows = sample(mnt, a.key)
    except OSError as e:
        print("semcachefs-top: cannot read '%s': %s; is semcachefs mounted there?"
              % (os.path.join(mnt, ".stats"), os.strerror(e.errno).lower()), file=sys.stderr)
        return 1
    try:
        known = read_kv(os.path.join(mnt, ".policy"))
    except OSError:
        known = None  # the root's .policy unreadable: take the keys as given
    for k in a.key:
        if known is not None and k not in known:
            print("semcachefs-top: -k '%s' is not a policy key (semcachefs --policy-keys "
                  "lists them)" % printable(k), file=sys.stderr)
            return 2
    if a.once:
        print("\n".join(render(mnt, rows, None, 0, a.key)))
        return 0
    ansi = sys.stdout.isatty() and os.environ.get("TERM", "dumb") != "dumb"
    prev, t_prev, t_rows = None, None, time.monotonic()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with Keys() as keys:
        while True:
            frame = render(mnt, rows, prev, (t_rows - t_prev) if prev else 0, a.key)
            if ansi:
                sys.stdout.write("\033[H\033[2J" + "\n".join(frame) + "\n(q quits)\n")
            else:
                sys.stdout.write("\n".join(frame) + "\n\n")
            sys.stdout.flush()
            if keys.wait_quit(a.interval):
                return 0
            prev, t_prev = rows, t_rows
            try:
                rows = sample(mnt, a.key)
                t_rows = time.monotonic()
            except OSError as e:
                print("semcachefs-top: cannot read '%s': %s (unmounted?)"
                      % (os.path.join(mnt, ".stats"), os.strerror(e.errno).lower()),
                      file=sys.stderr)
                return 1


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        sys.exit(0)
    except BrokenPipeError:
        sys.exit(0)

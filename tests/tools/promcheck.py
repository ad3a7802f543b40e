#!/usr/bin/env python3
"""promcheck.py - a strict check of Prometheus text exposition format.

Every line must be a HELP or TYPE comment, or a sample `name{labels} value`
whose metric name was declared by a TYPE line before it (a histogram's
samples are NAME_bucket, NAME_sum and NAME_count; a summary's NAME,
NAME_sum and NAME_count); label values must be properly quoted and escaped;
values must parse as floats; counters end in _total. A histogram's buckets
have ascending `le` edges ending in "+Inf", cumulative counts that never
fall, and a _count equal to the +Inf bucket. Exits 1 with the offending
line on the first error. Used by the tests beside Python's
prometheus_client parser and promtool, where those are installed.
"""
import re
import sys

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"'
SAMPLE = re.compile(rf"^({NAME})(\{{{LABEL}(?:,{LABEL})*\}})? (\S+)(?: -?\d+)?$")
LABELS = re.compile(LABEL)
HELP = re.compile(rf"^# HELP ({NAME}) .*$")
TYPE = re.compile(rf"^# TYPE ({NAME}) (counter|gauge|histogram|summary|untyped)$")
SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "summary": ("", "_sum", "_count")}


def family_of(name, typed):
    """(family, suffix) of a sample name, or None when no TYPE declares it."""
    if name in typed and typed[name] not in ("histogram",):
        return name, ""
    for fam, kind in typed.items():
        for suf in SUFFIXES.get(kind, ()):
            if suf and name == fam + suf:
                return fam, suf
    return None


def le_value(text):
    return float("inf") if text == "+Inf" else float(text)


def main(path):
    typed = {}
    series = {}  # (family, labels without le) -> [(le, count)], and _count
    text = open(path, encoding="utf-8").read()
    if text and not text.endswith("\n"):
        sys.exit("promcheck: the last line has no newline")

    def fail(n, why, line):
        sys.exit(f"promcheck: line {n}: {why}: {line}")

    for n, line in enumerate(text.splitlines(), 1):
        if m := TYPE.match(line):
            if m.group(1) in typed:
                fail(n, f"second TYPE for {m.group(1)}", line)
            if m.group(2) == "counter" and not m.group(1).endswith("_total"):
                fail(n, "a counter's name does not end in _total", line)
            typed[m.group(1)] = m.group(2)
        elif HELP.match(line):
            pass
        elif m := SAMPLE.match(line):
            fam = family_of(m.group(1), typed)
            if not fam:
                fail(n, "sample before its TYPE", line)
            value = float(m.group(m.lastindex))
            labels = dict(LABELS.findall(m.group(2) or ""))
            if typed[fam[0]] != "histogram":
                continue
            le = labels.pop("le", None)
            key = (fam[0], tuple(sorted(labels.items())))
            buckets, total = series.setdefault(key, ([], [None]))
            if fam[1] == "_bucket":
                if le is None:
                    fail(n, "a bucket without le", line)
                edge = le_value(le)
                if buckets and (edge <= buckets[-1][0] or value < buckets[-1][1]):
                    fail(n, "buckets not ascending and cumulative", line)
                buckets.append((edge, value))
            elif fam[1] == "_count":
                total[0] = value
        else:
            fail(n, "not valid exposition format", repr(line))
    if not typed:
        sys.exit("promcheck: no metrics")
    for (fam, labels), (buckets, total) in series.items():
        if not buckets or buckets[-1][0] != float("inf"):
            sys.exit(f"promcheck: {fam}{dict(labels)}: no +Inf bucket")
        if total[0] != buckets[-1][1]:
            sys.exit(f"promcheck: {fam}{dict(labels)}: _count {total[0]} is not the +Inf bucket {buckets[-1][1]}")


if __name__ == "__main__":
    main(sys.argv[1])

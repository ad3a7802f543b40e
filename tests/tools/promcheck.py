#!/usr/bin/env python3
"""promcheck.py - a strict check of Prometheus text exposition format.

Every line must be a HELP or TYPE comment, or a sample `name{labels} value`
whose metric name was declared by a TYPE line before it; label values must
be properly quoted and escaped; values must parse as floats. Exits 1 with
the offending line on the first error. Used by the tests where promtool is
not installed.
"""
import re
import sys

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
SAMPLE = re.compile(rf"^({NAME})(\{{(?:{LABEL})(?:,{LABEL})*\}})? (\S+)(?: -?\d+)?$")
HELP = re.compile(rf"^# HELP ({NAME}) .*$")
TYPE = re.compile(rf"^# TYPE ({NAME}) (counter|gauge|histogram|summary|untyped)$")


def main(path):
    typed = {}
    text = open(path, encoding="utf-8").read()
    if text and not text.endswith("\n"):
        sys.exit("promcheck: the last line has no newline")
    for n, line in enumerate(text.splitlines(), 1):
        if m := TYPE.match(line):
            if m.group(1) in typed:
                sys.exit(f"promcheck: line {n}: second TYPE for {m.group(1)}")
            typed[m.group(1)] = m.group(2)
        elif HELP.match(line):
            pass
        elif m := SAMPLE.match(line):
            if m.group(1) not in typed:
                sys.exit(f"promcheck: line {n}: sample before its TYPE: {line}")
            float(m.group(3))
        else:
            sys.exit(f"promcheck: line {n}: not valid exposition format: {line!r}")
    if not typed:
        sys.exit("promcheck: no metrics")


if __name__ == "__main__":
    main(sys.argv[1])

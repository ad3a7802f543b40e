#!/usr/bin/env python3
"""promparse.py - read .metrics with the Prometheus project's own Python
parser (prometheus_client.parser, Debian's python3-prometheus-client) and
print one line per sample, `TYPE NAME{label="value",...} VALUE`, labels
sorted, so that a test can assert exact numbers. Exits 1 if the parser
refuses the text, 3 if the module is missing (the caller skips).
"""
import sys

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    sys.exit(3)


def main(path):
    text = open(path, encoding="utf-8").read()
    try:
        families = list(text_string_to_metric_families(text))
    except Exception as e:  # the parser's own complaint, whatever its type
        sys.exit(f"promparse: refused: {e}")
    for fam in families:
        if not fam.documentation:
            sys.exit(f"promparse: {fam.name} has no HELP")
        for s in fam.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            print(f"{fam.type} {s.name}{{{labels}}} {s.value:g}")


if __name__ == "__main__":
    main(sys.argv[1])

#!/usr/bin/env python3
"""redis_chaos.py - a Redis proxy for the tests that corrupts chosen replies.

    redis_chaos.py LISTEN_PORT UPSTREAM_PORT [--seed N]

Forwards every command a client sends to a real redis-server on
127.0.0.1:UPSTREAM_PORT and its replies back, so that the store under test
talks to a real server, except where a rule says otherwise. Rules are set
at run time with a command the proxy answers itself (redis-cli -p PORT ...):

    CHAOS RULE MATCH MODE [COUNT [SKIP [ARG]]]
        the replies to commands whose text (every argument, joined by
        spaces) contains MATCH ("*" matches all) are changed as MODE says,
        COUNT times (-1: always), after SKIP matching commands went by;
        the first rule that applies wins. MODE is one of
          negate    integers (and digit strings) become negative
          zero      integers (and digit strings) become 0
          big       integers (and digit strings) become 2^62
          wrongtype integers become strings, strings integers, arrays nil
          garbage   a random reply of a random type (seeded)
          junk      a random reply, and the command is NOT forwarded
          mixed     garbage or junk, at random
          raw       bytes that are not RESP (a protocol error)
          reply     ARG, with \\r\\n escapes, instead of the server's reply
                    (the command still runs)
          fake      ARG instead of the reply; the command is NOT forwarded
          drop      the command runs, then the connection is closed
                    before its reply
          stall     the command is not forwarded and no reply comes (the
                    connection stays open until the client closes it)
    CHAOS AFTER N   rules apply only once N commands went through in all
    CHAOS CLEAR     no rules, counters reset
    CHAOS COUNT     how many commands went through (an integer reply)

Pub/Sub pushes and replies without a known command are forwarded as they
are. One upstream connection per client connection. What not: no RESP3, no
inline commands, no TLS.
"""
import asyncio
import random
import sys

rules = []
state = {"after": 0, "count": 0}
rng = random.Random(1)


class Closed(Exception):
    pass


async def read_line(r):
    line = await r.readline()
    if not line.endswith(b"\r\n"):
        raise Closed()
    return line


async def read_value(r):
    """One RESP2 value: (kind, payload, raw bytes)."""
    line = await read_line(r)
    kind = line[:1]
    if kind in (b"+", b"-", b":"):
        return kind, line[1:-2], line
    if kind == b"$":
        n = int(line[1:-2])
        if n < 0:
            return kind, None, line
        data = await r.readexactly(n + 2)
        return kind, data[:-2], line + data
    if kind == b"*":
        n = int(line[1:-2])
        if n < 0:
            return kind, None, line
        items, raw = [], line
        for _ in range(n):
            item = await read_value(r)
            items.append(item)
            raw += item[2]
        return kind, items, raw
    raise Closed()


def enc(kind, payload):
    if kind in (b"+", b"-", b":"):
        return kind + payload + b"\r\n"
    if payload is None:
        return kind + b"-1\r\n"
    if kind == b"$":
        return b"$%d\r\n" % len(payload) + payload + b"\r\n"
    return b"*%d\r\n" % len(payload) + b"".join(enc(k, p) for k, p, _ in payload)


def is_digits(b):
    return b is not None and len(b) > 0 and b.lstrip(b"-").isdigit()


def rewrite_numbers(kind, payload, fn):
    if kind == b":":
        return kind, fn(int(payload))
    if kind == b"$" and is_digits(payload):
        return kind, fn(int(payload))
    if kind == b"*" and payload is not None:
        out = []
        for k, p, raw in payload:
            k2, p2 = rewrite_numbers(k, p, fn)
            out.append((k2, p2, b""))
        return kind, out
    return kind, payload


def random_value(depth=0):
    t = rng.randrange(6 if depth < 2 else 5)
    if t == 0:
        return b":", b"%d" % rng.choice([-1, 0, 1, -(2 ** 40), 2 ** 62, rng.randrange(-99, 99)])
    if t == 1:
        return b"$", rng.choice([b"", b"-7", b"0", b"x" * rng.randrange(0, 60),
                                 bytes(rng.randrange(256) for _ in range(rng.randrange(0, 60)))])
    if t == 2:
        return b"$", None
    if t == 3:
        return b"+", b"OK"
    if t == 4:
        return b"-", b"ERR chaos"
    n = rng.randrange(0, 8)
    return b"*", [random_value(depth + 1) + (b"",) for _ in range(n)]


def changed(mode, kind, payload, arg):
    """The bytes to send instead of the reply (kind, payload)."""
    if mode == "negate":
        return enc(*rewrite_numbers(kind, payload, lambda v: b"%d" % (-abs(v) - 1 if v >= 0 else v)))
    if mode == "zero":
        return enc(*rewrite_numbers(kind, payload, lambda v: b"0"))
    if mode == "big":
        return enc(*rewrite_numbers(kind, payload, lambda v: b"%d" % (2 ** 62)))
    if mode == "wrongtype":
        if kind == b":":
            return enc(b"$", payload)
        if kind == b"$" and payload is not None:
            return b":7\r\n"
        if kind == b"*":
            return b"$-1\r\n"
        return b":7\r\n"
    if mode == "garbage":
        return enc(*random_value())
    if mode == "raw":
        return b"?chaos\x00\x01 not resp\r\n"
    if mode in ("reply", "fake"):
        return arg
    raise ValueError(mode)


def pick_rule(text):
    if state["count"] <= state["after"]:
        return None
    for rule in rules:
        if rule["count"] == 0:
            continue
        if rule["match"] != b"*" and rule["match"] not in text:
            continue
        if rule["skip"] > 0:
            rule["skip"] -= 1
            continue
        if rule["count"] > 0:
            rule["count"] -= 1
        return rule
    return None


def control(args):
    """A CHAOS command: the reply bytes."""
    sub = args[1].upper() if len(args) > 1 else b""
    if sub == b"RULE" and len(args) >= 4:
        arg = args[6] if len(args) > 6 else b""
        arg = arg.replace(b"\\r\\n", b"\r\n")
        rules.append({"match": args[2], "mode": args[3].decode(),
                      "count": int(args[4]) if len(args) > 4 else -1,
                      "skip": int(args[5]) if len(args) > 5 else 0,
                      "arg": arg})
        return b"+OK\r\n"
    if sub == b"AFTER" and len(args) == 3:
        state["after"] = state["count"] + int(args[2])
        return b"+OK\r\n"
    if sub == b"CLEAR":
        rules.clear()
        state["after"] = 0
        return b"+OK\r\n"
    if sub == b"COUNT":
        return b":%d\r\n" % state["count"]
    return b"-ERR chaos: RULE MATCH MODE [COUNT [SKIP [ARG]]] | AFTER N | CLEAR | COUNT\r\n"


async def handle(cr, cw, upstream):
    try:
        ur, uw = await asyncio.open_connection("127.0.0.1", upstream)
    except OSError:
        cw.close()
        return
    pending = asyncio.Queue()   # per forwarded command: its rule (or None)

    async def upward():
        try:
            while True:
                kind, items, raw = await read_value(cr)
                args = [p for _, p, _ in items] if kind == b"*" and items else []
                if args and args[0].upper() == b"CHAOS":
                    await pending.put(("local", control(args)))
                    continue
                state["count"] += 1
                rule = pick_rule(b" ".join(a or b"" for a in args))
                if rule and rule["mode"] == "stall":
                    await pending.put(("stall", None))
                    continue
                mode = rule["mode"] if rule else None
                if mode == "mixed":
                    mode = rng.choice(["garbage", "junk"])
                if mode == "fake":
                    await pending.put(("local", rule["arg"]))
                    continue
                if mode == "junk":
                    await pending.put(("local", enc(*random_value())))
                    continue
                if mode == "garbage":
                    rule = dict(rule, mode="garbage")
                if args and args[0].upper() in (b"SUBSCRIBE", b"PSUBSCRIBE"):
                    rule = "subscribe"
                await pending.put(("fwd", rule))
                uw.write(raw)
                await uw.drain()
        except (Closed, asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        await pending.put(("end", None))

    async def downward():
        try:
            while True:
                what, x = await pending.get()
                if what == "end":
                    break
                if what == "stall":
                    await asyncio.Event().wait()
                if what == "local":
                    cw.write(x)
                    await cw.drain()
                    continue
                kind, payload, raw = await read_value(ur)
                rule = x
                if rule == "subscribe":
                    # from here on the server pushes unasked: pass it all on
                    cw.write(raw)
                    while True:
                        data = await ur.read(65536)
                        if not data:
                            return
                        cw.write(data)
                        await cw.drain()
                if rule and rule["mode"] == "drop":
                    break
                if rule:
                    raw = changed(rule["mode"], kind, payload, rule["arg"])
                cw.write(raw)
                await cw.drain()
        except (Closed, asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass

    up = asyncio.ensure_future(upward())
    down = asyncio.ensure_future(downward())
    await asyncio.wait([up, down], return_when=asyncio.FIRST_COMPLETED)
    for t in (up, down):
        t.cancel()
    for w in (cw, uw):
        try:
            w.close()
        except Exception:
            pass


async def main():
    listen, upstream = int(sys.argv[1]), int(sys.argv[2])
    if "--seed" in sys.argv:
        rng.seed(int(sys.argv[sys.argv.index("--seed") + 1]))
    server = await asyncio.start_server(lambda r, w: handle(r, w, upstream),
                                        "127.0.0.1", listen)
    print("listening", listen, flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass

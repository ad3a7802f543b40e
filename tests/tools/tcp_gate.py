#!/usr/bin/env python3
"""tcp_gate.py - a TCP forwarder for the tests that can cut the link silently.

    tcp_gate.py LISTEN_PORT CONTROL_PORT UPSTREAM_PORT   run the forwarder
    tcp_gate.py --ctl CONTROL_PORT COMMAND [ARG]         send it a command

Forwards bytes both ways between clients on 127.0.0.1:LISTEN_PORT and
127.0.0.1:UPSTREAM_PORT, one upstream connection per client, without
looking at them (unlike redis_chaos.py, which reads RESP). Commands, one
line each on CONTROL_PORT (answered "ok" or "error ..."):

    block       a partition: nothing is forwarded any more, either way, and
                no connection is closed (no FIN, no RST); bytes that arrive
                are held, as TCP would retransmit them once the network
                heals. New clients are accepted but get no upstream until
                "pass" (a real partition would leave their SYN unanswered:
                here the connect succeeds and the first reply never comes)
    pass        forward again, held bytes first, in order
    upstream N  clients accepted from now on go to port N (a failover that
                moves an address to another server)
    reset       close every client connection now (the old server's
                connections end, as when it goes down)

The forwarder prints "listening LISTEN_PORT" once both ports are open.
What not: no IPv6, no TLS awareness (bytes are bytes), no loss or delay
short of a full block.
"""
import asyncio
import socket
import sys

state = {"upstream": 0}
gate = asyncio.Event()
conns = set()


async def pump(r, w):
    try:
        while True:
            data = await r.read(65536)
            await gate.wait()
            if not data:
                break
            w.write(data)
            await w.drain()
    except (ConnectionError, OSError):
        pass
    try:
        w.close()
    except Exception:
        pass


async def handle(cr, cw):
    conns.add(cw)
    try:
        await gate.wait()
        try:
            ur, uw = await asyncio.open_connection("127.0.0.1", state["upstream"])
        except OSError:
            return
        conns.add(uw)
        up = asyncio.ensure_future(pump(cr, uw))
        down = asyncio.ensure_future(pump(ur, cw))
        await asyncio.wait([up, down], return_when=asyncio.FIRST_COMPLETED)
        for t in (up, down):
            t.cancel()
        conns.discard(uw)
        uw.close()
    finally:
        conns.discard(cw)
        cw.close()


async def control(r, w):
    line = (await r.readline()).decode(errors="replace").split()
    reply = "ok"
    if line == ["block"]:
        gate.clear()
    elif line == ["pass"]:
        gate.set()
    elif len(line) == 2 and line[0] == "upstream" and line[1].isdigit():
        state["upstream"] = int(line[1])
    elif line == ["reset"]:
        for c in list(conns):
            c.close()
    else:
        reply = "error: block | pass | upstream PORT | reset"
    w.write((reply + "\n").encode())
    await w.drain()
    w.close()


async def main(listen, ctl, upstream):
    state["upstream"] = upstream
    gate.set()
    server = await asyncio.start_server(handle, "127.0.0.1", listen)
    cserver = await asyncio.start_server(control, "127.0.0.1", ctl)
    print("listening", listen, flush=True)
    async with server, cserver:
        await asyncio.gather(server.serve_forever(), cserver.serve_forever())


def send(ctl, words):
    with socket.create_connection(("127.0.0.1", ctl), timeout=5) as s:
        s.sendall((" ".join(words) + "\n").encode())
        reply = s.makefile().readline().strip()
    print(reply)
    return 0 if reply == "ok" else 1


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "--ctl":
        sys.exit(send(int(sys.argv[2]), sys.argv[3:]))
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    try:
        asyncio.run(main(*(int(a) for a in sys.argv[1:])))
    except KeyboardInterrupt:
        pass

#!/usr/bin/env python3
"""fake_embed_server.py - the tests' own OpenAI-compatible embeddings server.

Not a real model: POST /v1/embeddings answers deterministic vectors derived
from a hash of each input, so tests can check batching, dimensions and
failure handling against a real HTTP server on loopback. The request's
"model" picks a behaviour:
  ok         vectors (dimension = "dimensions" or 8)
  slow       sleeps FAKE_EMBED_SLOW_S seconds (default 5), then answers
  error500   HTTP 500
  malformed  HTTP 200 with a body that is not JSON
  flaky      HTTP 500 on every other request, else ok
GET /stats returns {"requests", "inputs", "max_batch", "bad_auth"}.
If FAKE_EMBED_KEY is set, requests must carry "Authorization: Bearer KEY"
(else HTTP 401). Prints the port it listens on (127.0.0.1, port 0 = any)
as its first line of output.
"""
import hashlib
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
STATS = {"requests": 0, "inputs": 0, "max_batch": 0, "bad_auth": 0}
KEY = os.environ.get("FAKE_EMBED_KEY")
SLOW_S = float(os.environ.get("FAKE_EMBED_SLOW_S", "5"))


def vector(text, dim):
    out = []
    for k in range(dim):
        h = hashlib.sha256(f"{k}:{text}".encode("utf-8", "surrogatepass")).digest()
        out.append(int.from_bytes(h[:4], "little") / 2**32 - 0.5)
    return out


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, code, body, ctype="application/json"):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/stats":
            with LOCK:
                self.reply(200, json.dumps(STATS))
        else:
            self.reply(404, "{}")

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if KEY is not None and self.headers.get("Authorization") != "Bearer " + KEY:
            with LOCK:
                STATS["bad_auth"] += 1
            return self.reply(401, '{"error": {"message": "bad key"}}')
        try:
            req = json.loads(body)
            inputs = req["input"]
            if isinstance(inputs, str):
                inputs = [inputs]
        except (ValueError, KeyError, TypeError):
            return self.reply(400, '{"error": {"message": "bad request"}}')
        with LOCK:
            STATS["requests"] += 1
            STATS["inputs"] += len(inputs)
            STATS["max_batch"] = max(STATS["max_batch"], len(inputs))
            nreq = STATS["requests"]
        mode = req.get("model", "ok")
        if mode == "slow":
            time.sleep(SLOW_S)
        if mode == "error500" or (mode == "flaky" and nreq % 2 == 1):
            return self.reply(500, '{"error": {"message": "internal"}}')
        if mode == "malformed":
            return self.reply(200, '{"data": [{"embedding": [0.1, ')
        dim = int(req.get("dimensions") or 8)
        data = [{"object": "embedding", "index": i, "embedding": vector(t, dim)}
                for i, t in enumerate(inputs)]
        data.reverse()  # "index" decides the order, not the position
        self.reply(200, json.dumps({"object": "list", "data": data, "model": mode}))


def main():
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 0), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()

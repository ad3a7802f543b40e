#!/usr/bin/env python3
"""fake_openai_upstream.py - the tests' own OpenAI-compatible chat server.

Not a model: POST /v1/chat/completions answers "answer to [LAST USER
MESSAGE] from MODEL", POST /v1/completions "completion of [PROMPT] from
MODEL", in OpenAI's JSON shape or, with "stream": true, as server-sent
events (a role chunk, the answer a few words per event, a finish chunk,
data: [DONE]). Markers in the question pick a behaviour:
  [error 429]  HTTP 429 with an OpenAI-style error body (any 3-digit status)
  [slow]       waits up to 10 s (or until the client goes away), then answers
  [length]     finish_reason "length" (a truncated answer)
  [tools]      a tool call instead of text
  [cut]        (streaming) stops after the first words without [DONE]
GET /v1/models lists one model. Every request is appended as one JSON line
{"method", "path", "authorization", "body"} to the --log file, so tests
count upstream calls exactly. Listens on 127.0.0.1, port 0 = any: the port
is written to --port-file once listening.
"""

import argparse
import json
import os
import re
import select
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()  # guards writes to the log file


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    log_path = None

    def log_message(self, *args):
        pass

    def reply(self, code, obj):
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Upstream", "fake")
        self.end_headers()
        self.wfile.write(data)

    def record(self, body):
        with LOCK, open(self.log_path, "a") as f:
            f.write(json.dumps({"method": self.command, "path": self.path,
                                "authorization": self.headers.get("Authorization"),
                                "body": body}) + "\n")

    def do_GET(self):
        self.record(None)
        if self.path == "/v1/models":
            self.reply(200, {"object": "list", "data": [{"id": "fake-1", "object": "model",
                                                         "created": 0, "owned_by": "tests"}]})
        else:
            self.reply(404, {"error": {"message": "no such path", "type": "not_found"}})

    def client_gone(self):
        r, _, _ = select.select([self.connection], [], [], 0)
        return bool(r) and not self.connection.recv(1, socket.MSG_PEEK)  # EOF: gone

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
        self.record(body)
        chat = self.path == "/v1/chat/completions"
        if not chat and self.path != "/v1/completions":
            return self.reply(404, {"error": {"message": "no such path", "type": "not_found"}})
        model = body.get("model", "")
        if chat:
            q = body["messages"][-1]["content"]
            if isinstance(q, list):
                q = "".join(p.get("text", "") for p in q)
            text = "answer to [%s] from %s" % (q, model)
        else:
            q = body["prompt"] if isinstance(body["prompt"], str) else body["prompt"][0]
            text = "completion of [%s] from %s" % (q, model)
        m = re.search(r"\[error (\d{3})\]", q)
        if m:
            return self.reply(int(m.group(1)), {"error": {"message": "fake upstream error %s"
                                                          % m.group(1), "type": "fake_error",
                                                          "param": None, "code": "fake"}})
        if "[slow]" in q:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not self.client_gone():
                time.sleep(0.05)
        finish = "length" if "[length]" in q else "stop"
        tools = "[tools]" in q
        if body.get("stream") is True:
            return self.stream(chat, model, text, finish, tools, "[cut]" in q)
        if chat:
            msg = {"role": "assistant", "content": None if tools else text}
            if tools:
                msg["tool_calls"] = [{"id": "call_1", "type": "function",
                                      "function": {"name": "f", "arguments": "{}"}}]
            choice = {"index": 0, "message": msg, "logprobs": None,
                      "finish_reason": "tool_calls" if tools else finish}
        else:
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}
        self.reply(200, {"id": "fake-1", "object": "chat.completion" if chat else "text_completion",
                         "created": int(time.time()), "model": model, "choices": [choice],
                         "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}})

    def stream(self, chat, model, text, finish, tools, cut):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("X-Upstream", "fake")
        self.send_header("Connection", "close")  # the end of the body ends the stream
        self.end_headers()
        self.close_connection = True
        obj = "chat.completion.chunk" if chat else "text_completion"

        def send(choice):
            ev = {"id": "fake-s", "object": obj, "created": int(time.time()), "model": model,
                  "choices": [choice]}
            self.wfile.write(b"data: " + json.dumps(ev).encode() + b"\n\n")
            self.wfile.flush()

        def piece(t, fin=None, role=False):
            if not chat:
                return {"index": 0, "text": t or "", "logprobs": None, "finish_reason": fin}
            d = {} if t is None else {"content": t}
            if role:
                d["role"] = "assistant"
            return {"index": 0, "delta": d, "logprobs": None, "finish_reason": fin}

        if chat:
            send(piece("", role=True))
        if tools and chat:
            send({"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "call_1",
                  "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                  "logprobs": None, "finish_reason": None})
            finish = "tool_calls"
        else:
            words = re.findall(r"\S+\s*", text)
            for i in range(0, len(words), 2):
                send(piece("".join(words[i:i + 2])))
                if cut:
                    return
        send(piece(None, finish))
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log", required=True)
    a = ap.parse_args()
    Handler.log_path = a.log
    open(a.log, "a").close()
    srv = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    srv.daemon_threads = True
    with open(a.port_file + ".tmp", "w") as f:
        f.write("%d\n" % srv.server_address[1])
    os.rename(a.port_file + ".tmp", a.port_file)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

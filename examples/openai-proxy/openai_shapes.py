"""openai_shapes.py - what semcache-proxy reads from and writes in OpenAI's API.

Pure functions, no I/O: which category names are allowed, the (query,
context) of a chat or completions request, the JSON and server-sent events
of an answer replayed from the cache, and the answer assembled from an
upstream's stream. Not here: HTTP, the cache (semcache-proxy does both).
"""

import json
import re

FORMAT = "semcache-proxy/1"
RESERVED = {"entries", "policy.yaml"}
SESSION_SUFFIXES = (".query", ".response", ".status", ".context", ".feedback", ".neighbors")
NOT_CONTEXT = ("stream", "stream_options", "user")  # do not change the answer


def category_name_ok(name):
    """A single directory name the proxy may use under --category."""
    if not name or len(name.encode("utf-8", "surrogateescape")) > 200:
        return False
    if "/" in name or "\\" in name or ".." in name or name.startswith("."):
        return False
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        return False
    return name not in RESERVED and not name.endswith(SESSION_SUFFIXES)


# ---- what a request asks (query and context) ----

def text_of(content):
    """The text of a message content: a string, or a list of text parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text"
                                         and isinstance(p.get("text"), str) for p in content):
        return "".join(p["text"] for p in content)
    return None


def cache_key(kind, body):
    """(query, context) for a cacheable request, or (None, reason)."""
    if body.get("n", 1) != 1:
        return None, "n is not 1"
    rest = {k: v for k, v in body.items() if k not in NOT_CONTEXT}
    if kind == "chat":
        msgs = body.get("messages")
        if not isinstance(msgs, list) or not msgs or not isinstance(msgs[-1], dict):
            return None, "no messages"
        last = msgs[-1]
        query = text_of(last.get("content"))
        if last.get("role") != "user" or query is None:
            return None, "the last message is not a user's text"
        rest["messages"] = msgs[:-1]
        rest["last_message"] = {k: v for k, v in last.items() if k != "content"}
    else:
        prompt = body.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1:
            prompt = prompt[0]
        if not isinstance(prompt, str):
            return None, "the prompt is not one string"
        query = prompt
        del rest["prompt"]
    if not query.strip():
        return None, "empty query"
    context = json.dumps({"format": FORMAT, "endpoint": kind, "request": rest},
                         sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return query, context


# ---- answers in OpenAI's shapes ----

def pieces(text, size):
    """Split text into chunks of about size characters at word ends."""
    out, cur = [], ""
    for tok in re.findall(r"\s*\S+\s*|\s+", text):
        cur += tok
        if len(cur) >= size:
            out.append(cur)
            cur = ""
    if cur or not out:
        out.append(cur)
    return out


def completion(kind, model, text, rid, created):
    usage = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    if kind == "chat":
        choice = {"index": 0, "message": {"role": "assistant", "content": text, "refusal": None},
                  "logprobs": None, "finish_reason": "stop"}
        obj = "chat.completion"
    else:
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": "stop"}
        obj = "text_completion"
    return {"id": rid, "object": obj, "created": created, "model": model,
            "choices": [choice], "usage": usage, "system_fingerprint": None}


def chunks(kind, model, text, rid, created, size, usage):
    """The SSE events replaying text, ending with [DONE]."""
    obj = "chat.completion.chunk" if kind == "chat" else "text_completion"

    def event(choice, **extra):
        d = {"id": rid, "object": obj, "created": created, "model": model,
             "system_fingerprint": None, "choices": [choice] if choice else []}
        d.update(extra)
        return "data: %s\n\n" % json.dumps(d, separators=(",", ":"), ensure_ascii=False)

    def choice(piece, finish=None, first=False):
        if kind == "chat":
            delta = {} if piece is None else {"content": piece}
            if first:
                delta["role"] = "assistant"
            return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {"index": 0, "text": piece or "", "logprobs": None, "finish_reason": finish}

    out = []
    if kind == "chat":
        out.append(event(choice("", first=True)))
    out.extend(event(choice(p)) for p in pieces(text, size) if p)
    out.append(event(choice(None, "stop")))
    if usage:
        out.append(event(None, usage={"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}))
    out.append("data: [DONE]\n\n")
    return out


def answer_of(kind, resp):
    """The text of a finished upstream answer worth caching, or None."""
    try:
        (c,) = resp["choices"]
        if c.get("finish_reason") != "stop":
            return None
        if kind == "chat":
            m = c["message"]
            if m.get("tool_calls") or m.get("function_call") or not isinstance(m.get("content"), str):
                return None
            return m["content"] or None
        return c["text"] if isinstance(c.get("text"), str) and c["text"] else None
    except (KeyError, TypeError, ValueError):
        return None


class StreamAssembler:
    """Collects the answer of an upstream SSE stream, line by line."""

    def __init__(self, kind):
        self.kind, self.parts, self.finish, self.done, self.cacheable = kind, [], None, False, True

    def line(self, raw):
        line = raw.rstrip(b"\r\n")
        if not line.startswith(b"data:"):
            return
        data = line[5:].strip()
        if data == b"[DONE]":
            self.done = True
            return
        try:
            ev = json.loads(data)
            for c in ev.get("choices") or []:
                if c.get("index", 0) != 0:
                    self.cacheable = False
                    continue
                if self.kind == "chat":
                    d = c.get("delta") or {}
                    if d.get("tool_calls") or d.get("function_call"):
                        self.cacheable = False
                    if isinstance(d.get("content"), str):
                        self.parts.append(d["content"])
                elif isinstance(c.get("text"), str):
                    self.parts.append(c["text"])
                if c.get("finish_reason"):
                    self.finish = c["finish_reason"]
        except (ValueError, AttributeError, TypeError):
            self.cacheable = False

    def answer(self):
        text = "".join(self.parts)
        ok = self.done and self.cacheable and self.finish == "stop" and text
        return text if ok else None

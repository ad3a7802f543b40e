"""Tests of semcache-proxy over HTTP (urllib), against a real mount and the
fake upstream tests/tools/fake_openai_upstream.py.

tests/90-clients.bats starts both and sets:
  SEMCACHE_PROXY_URL     http://127.0.0.1:PORT of the proxy
  SEMCACHE_PROXY_ROOT    the proxy's --category directory (in the mount)
  SEMCACHE_UPSTREAM_LOG  the fake upstream's request log (one JSON line each)
  SEMCACHE_TEST_STORE    the daemon's store directory (searched for secrets)
  SEMCACHE_PROXY_MOUNT_GONE=1  only the test for a killed daemon runs
Each test makes its own category under SEMCACHE_PROXY_ROOT.
"""

import json
import os
import unittest
import urllib.error
import urllib.request
import uuid

URL = os.environ.get("SEMCACHE_PROXY_URL")
ROOT = os.environ.get("SEMCACHE_PROXY_ROOT")
LOG = os.environ.get("SEMCACHE_UPSTREAM_LOG")
GONE = os.environ.get("SEMCACHE_PROXY_MOUNT_GONE") == "1"
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
Q = "how do I reverse a list in python"
P = "python: reverse a list"


def upstream_calls():
    with open(LOG) as f:
        return [json.loads(line) for line in f]


def post(path, body, headers=None, raw=None):
    """(status, headers, body bytes) of a POST to the proxy."""
    data = raw if raw is not None else json.dumps(body).encode()
    req = urllib.request.Request(URL + path, data=data, method="POST",
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with OPENER.open(req, timeout=30) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        with e:
            return e.code, e.headers, e.read()


def chat(q, model="m1", system="be brief", stream=False, **extra):
    msgs = [{"role": "system", "content": system}] if system else []
    body = {"model": model, "messages": msgs + [{"role": "user", "content": q}], **extra}
    if stream:
        body["stream"] = True
    return body


def parse_sse(data):
    """The JSON events of a server-sent event stream; asserts its framing."""
    text = data.decode("utf-8")
    assert text.endswith("\n\n"), "a stream ends with a blank line"
    events = text[:-2].split("\n\n")
    assert events[-1] == "data: [DONE]", events[-1]
    out = []
    for ev in events[:-1]:
        assert ev.startswith("data: ") and "\n" not in ev, repr(ev)
        out.append(json.loads(ev[6:]))
    return out


def answer_of_stream(events):
    parts, finish = [], None
    for ev in events:
        for c in ev["choices"]:
            if "delta" in c:
                parts.append(c["delta"].get("content") or "")
            else:
                parts.append(c.get("text") or "")
            finish = c.get("finish_reason") or finish
    return "".join(parts), finish


@unittest.skipUnless(URL and not GONE, "needs SEMCACHE_PROXY_URL (see tests/90-clients.bats)")
class Proxy(unittest.TestCase):
    def setUp(self):
        self.name = "p" + uuid.uuid4().hex[:10]
        os.mkdir(os.path.join(ROOT, self.name))
        self.base = "/c/%s/v1" % self.name
        self.calls0 = len(upstream_calls())

    def calls(self):
        return len(upstream_calls()) - self.calls0

    def entries(self):
        return os.listdir(os.path.join(ROOT, self.name, "entries"))

    def test_miss_then_paraphrase_hit_without_upstream(self):
        st, h, body = post(self.base + "/chat/completions", chat(Q))
        self.assertEqual((st, h["X-Semcache"]), (200, "miss"))
        want = "answer to [%s] from m1" % Q
        self.assertEqual(json.loads(body)["choices"][0]["message"]["content"], want)
        self.assertEqual(self.calls(), 1)
        for q in (Q, P):
            st, h, body = post(self.base + "/chat/completions", chat(q))
            self.assertEqual(st, 200)
            self.assertRegex(h["X-Semcache"], r"^hit; score=(1\.000|0\.9\d\d); entry=\d+$")
            obj = json.loads(body)
            self.assertEqual(obj["object"], "chat.completion")
            self.assertEqual(obj["model"], "m1")
            self.assertEqual(obj["choices"][0]["message"], {"role": "assistant", "content": want,
                                                            "refusal": None})
            self.assertEqual(obj["choices"][0]["finish_reason"], "stop")
        self.assertEqual(self.calls(), 1)
        self.assertEqual(len(self.entries()), 1)

    def test_streaming_hit_is_valid_sse(self):
        post(self.base + "/chat/completions", chat(Q))
        st, h, body = post(self.base + "/chat/completions",
                           chat(P, stream=True, stream_options={"include_usage": True}))
        self.assertEqual(st, 200)
        self.assertTrue(h["Content-Type"].startswith("text/event-stream"), h["Content-Type"])
        self.assertTrue(h["X-Semcache"].startswith("hit; "))
        events = parse_sse(body)
        self.assertGreater(len(events), 3)
        self.assertEqual({e["object"] for e in events}, {"chat.completion.chunk"})
        self.assertEqual(len({e["id"] for e in events}), 1)
        self.assertEqual(events[0]["choices"][0]["delta"]["role"], "assistant")
        self.assertEqual(answer_of_stream(events), ("answer to [%s] from m1" % Q, "stop"))
        self.assertEqual(events[-1]["choices"], [])
        self.assertEqual(events[-1]["usage"]["total_tokens"], 0)
        self.assertEqual(self.calls(), 1)

    def test_streaming_miss_streams_upstream_and_fills(self):
        st, h, body = post(self.base + "/chat/completions", chat(Q, stream=True))
        self.assertEqual((st, h["X-Semcache"], h["X-Upstream"]), (200, "miss", "fake"))
        events = parse_sse(body)
        self.assertEqual({e["id"] for e in events}, {"fake-s"})  # upstream's own events
        want = "answer to [%s] from m1" % Q
        self.assertEqual(answer_of_stream(events), (want, "stop"))
        st, h, body = post(self.base + "/chat/completions", chat(P))
        self.assertTrue(h["X-Semcache"].startswith("hit; "), h["X-Semcache"])
        self.assertEqual(json.loads(body)["choices"][0]["message"]["content"], want)
        self.assertEqual(self.calls(), 1)

    def test_unfinished_answers_are_not_cached(self):
        for q, stream in (("[length] tell me everything", False), ("[tools] call a tool", False),
                          ("[cut] a stream that breaks off", True), ("[tools] stream a tool", True)):
            for _ in range(2):
                st, h, _ = post(self.base + "/chat/completions", chat(q, stream=stream))
                self.assertEqual((st, h["X-Semcache"]), (200, "miss"), q)
        self.assertEqual(self.calls(), 8)
        self.assertEqual(self.entries(), [])

    def test_upstream_error_passes_through_and_is_not_cached(self):
        for _ in range(2):
            st, h, body = post(self.base + "/chat/completions", chat("[error 429] busy now"))
            self.assertEqual(st, 429)
            self.assertEqual(json.loads(body)["error"]["message"], "fake upstream error 429")
            self.assertEqual(h["X-Semcache"], "miss; not cached (upstream 429)")
        self.assertEqual(self.calls(), 2)
        self.assertEqual(self.entries(), [])

    def test_upstream_timeout_is_504_and_nothing_is_cached(self):
        st, h, body = post(self.base + "/chat/completions", chat("[slow] take your time"))
        self.assertEqual(st, 504)
        err = json.loads(body)["error"]
        self.assertEqual(err["code"], "upstream_timeout")
        self.assertIn("did not answer within 1 s; nothing was cached", err["message"])
        self.assertEqual(self.entries(), [])

    def test_body_that_is_not_json_is_400(self):
        for raw in (b"{not json", b"\xff\xfe", b"[1, 2]", b""):
            st, h, body = post(self.base + "/chat/completions", None, raw=raw)
            self.assertEqual(st, 400, raw)
            self.assertEqual(h["Content-Type"], "application/json")
            self.assertEqual(json.loads(body)["error"]["code"], "invalid_json")
        self.assertEqual(self.calls(), 0)

    def test_category_names_are_validated(self):
        bad = ["..", ".stats", "entries", "x.query", "a\x01b", "a/b", "policy.yaml"]
        for name in bad:
            st, _, body = post("/v1/chat/completions", chat(Q), {"X-Semcache-Category": name})
            self.assertEqual(st, 400, name)
            self.assertEqual(json.loads(body)["error"]["code"], "bad_category")
        for path in ("/c/..%2Fetc/v1/chat/completions", "/c/%2E%2E/v1/chat/completions",
                     "/c/a%01/v1/chat/completions"):
            st, _, body = post(path, chat(Q))
            self.assertEqual(st, 400, path)
        st, _, body = post("/c/no-such-category/v1/chat/completions", chat(Q))
        self.assertEqual(st, 404)
        self.assertIn("category 'no-such-category' does not exist", json.loads(body)["error"]["message"])
        st, _, _ = post(self.base + "/chat/completions", chat(Q), {"X-Semcache-Category": "other"})
        self.assertEqual(st, 400)
        self.assertEqual(self.calls(), 0)

    def test_header_selects_the_category(self):
        st, h, _ = post("/v1/chat/completions", chat(Q), {"X-Semcache-Category": self.name})
        self.assertEqual((st, h["X-Semcache"]), (200, "miss"))
        self.assertEqual(len(self.entries()), 1)
        st, h, _ = post(self.base + "/chat/completions", chat(P))
        self.assertTrue(h["X-Semcache"].startswith("hit; "))

    def test_model_system_prompt_and_turns_are_context(self):
        post(self.base + "/chat/completions", chat(Q))
        variants = [chat(Q, model="m2"), chat(Q, system="be verbose"), chat(Q, temperature=0.2),
                    {"model": "m1", "messages": [{"role": "system", "content": "be brief"},
                                                 {"role": "user", "content": "earlier"},
                                                 {"role": "assistant", "content": "reply"},
                                                 {"role": "user", "content": Q}]}]
        for body in variants:
            st, h, _ = post(self.base + "/chat/completions", body)
            self.assertEqual((st, h["X-Semcache"]), (200, "miss"), body)
        self.assertEqual(self.calls(), 5)
        st, h, _ = post(self.base + "/chat/completions", chat(Q, user="someone-else"))
        self.assertTrue(h["X-Semcache"].startswith("hit; "), "user does not change the answer")

    def test_authorization_goes_upstream_and_is_never_stored(self):
        secret = "sk-secret-" + uuid.uuid4().hex
        st, _, _ = post(self.base + "/chat/completions", chat(Q), {"Authorization": "Bearer " + secret})
        self.assertEqual(st, 200)
        self.assertEqual(upstream_calls()[-1]["authorization"], "Bearer " + secret)
        store = os.environ["SEMCACHE_TEST_STORE"]
        for d, _, files in os.walk(store):
            for f in files:
                with open(os.path.join(d, f), "rb") as fh:
                    self.assertNotIn(secret.encode(), fh.read(), os.path.join(d, f))
        self.assertEqual(len(self.entries()), 1)

    def test_completions_endpoint_miss_hit_and_stream(self):
        body = {"model": "c1", "prompt": Q, "max_tokens": 20}
        st, h, r = post(self.base + "/completions", body)
        self.assertEqual((st, h["X-Semcache"]), (200, "miss"))
        want = "completion of [%s] from c1" % Q
        st, h, r = post(self.base + "/completions", dict(body, prompt=[P]))
        self.assertTrue(h["X-Semcache"].startswith("hit; "))
        obj = json.loads(r)
        self.assertEqual((obj["object"], obj["choices"][0]["text"]), ("text_completion", want))
        st, h, r = post(self.base + "/completions", dict(body, prompt=P, stream=True))
        events = parse_sse(r)
        self.assertEqual({e["object"] for e in events}, {"text_completion"})
        self.assertEqual(answer_of_stream(events), (want, "stop"))
        self.assertEqual(self.calls(), 1)

    def test_other_paths_are_forwarded_uncached(self):
        req = urllib.request.Request(URL + self.base + "/models")
        with OPENER.open(req, timeout=30) as r:
            self.assertEqual(r.headers["X-Semcache"], "bypass; reason=path not cached")
            self.assertEqual(json.loads(r.read())["data"][0]["id"], "fake-1")
        st, h, _ = post(self.base + "/chat/completions", chat(Q, n=2))
        self.assertEqual((st, h["X-Semcache"]), (200, "bypass; reason=n is not 1"))
        self.assertEqual(self.calls(), 2)


@unittest.skipUnless(URL and GONE, "needs SEMCACHE_PROXY_MOUNT_GONE=1 (the daemon is killed first)")
class MountGone(unittest.TestCase):
    def test_requests_bypass_the_cache_when_the_mount_is_gone(self):
        for path in ("/v1/chat/completions", "/c/code/v1/chat/completions"):
            st, h, body = post(path, chat(Q))
            self.assertEqual((st, h["X-Semcache"]), (200, "bypass; reason=ENOTCONN"), path)
            self.assertEqual(json.loads(body)["choices"][0]["message"]["content"],
                             "answer to [%s] from m1" % Q)


if __name__ == "__main__":
    unittest.main()

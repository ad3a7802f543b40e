// semcache-proxy through the official `openai` npm client, against a real
// mount and tests/tools/fake_openai_upstream.py. tests/90-clients.bats starts
// both and sets SEMCACHE_PROXY_URL, SEMCACHE_PROXY_ROOT and
// SEMCACHE_UPSTREAM_LOG (see test_proxy.py); each test makes its own category.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import OpenAI from 'openai';

const URL = process.env.SEMCACHE_PROXY_URL;
const ROOT = process.env.SEMCACHE_PROXY_ROOT;
const LOG = process.env.SEMCACHE_UPSTREAM_LOG;
const skip = URL ? false : 'needs SEMCACHE_PROXY_URL (see tests/90-clients.bats)';
const Q = 'how do I reverse a list in python';
const P = 'python: reverse a list';

const upstreamCalls = () => readFileSync(LOG, 'utf8').split('\n').filter(Boolean).length;

function setup() {
  const name = `o${randomBytes(5).toString('hex')}`;
  mkdirSync(path.join(ROOT, name));
  const client = new OpenAI({ baseURL: `${URL}/c/${name}/v1`, apiKey: 'sk-test', maxRetries: 0 });
  const calls0 = upstreamCalls();
  return {
    client,
    calls: () => upstreamCalls() - calls0,
    entries: () => readdirSync(path.join(ROOT, name, 'entries')),
  };
}

const ask = (q) => ({ model: 'm1', messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content: q }] });

async function collect(stream) {
  let text = '';
  let finish = null;
  for await (const chunk of stream) {
    for (const c of chunk.choices) {
      text += c.delta?.content ?? c.text ?? '';
      finish = c.finish_reason ?? finish;
    }
  }
  return { text, finish };
}

describe('semcache-proxy with the openai client', { skip }, () => {
  it('a miss calls upstream once, a paraphrase is a hit', async () => {
    const { client, calls } = setup();
    const want = `answer to [${Q}] from m1`;
    const first = await client.chat.completions.create(ask(Q)).withResponse();
    assert.equal(first.response.headers.get('x-semcache'), 'miss');
    assert.equal(first.data.choices[0].message.content, want);
    const second = await client.chat.completions.create(ask(P)).withResponse();
    assert.match(second.response.headers.get('x-semcache'), /^hit; score=0\.9\d\d; entry=\d+$/);
    assert.equal(second.data.choices[0].message.content, want);
    assert.equal(second.data.object, 'chat.completion');
    assert.equal(calls(), 1);
  });

  it('a streaming hit parses as a stream of chunks', async () => {
    const { client, calls } = setup();
    await client.chat.completions.create(ask(Q));
    const { data: stream, response } = await client.chat.completions
      .create({ ...ask(P), stream: true, stream_options: { include_usage: true } }).withResponse();
    assert.match(response.headers.get('x-semcache'), /^hit; /);
    assert.deepEqual(await collect(stream), { text: `answer to [${Q}] from m1`, finish: 'stop' });
    assert.equal(calls(), 1);
  });

  it('a streaming miss streams upstream and fills the cache', async () => {
    const { client, calls, entries } = setup();
    const want = `answer to [${Q}] from m1`;
    assert.deepEqual(await collect(await client.chat.completions.create({ ...ask(Q), stream: true })),
      { text: want, finish: 'stop' });
    assert.equal(entries().length, 1);
    const hit = await client.chat.completions.create(ask(P));
    assert.equal(hit.choices[0].message.content, want);
    assert.equal(calls(), 1);
  });

  it("upstream's error reaches the client with its status and is not cached", async () => {
    const { client, calls, entries } = setup();
    for (let i = 0; i < 2; i++) {
      await assert.rejects(client.chat.completions.create(ask('[error 503] overloaded')), (e) => {
        assert.ok(e instanceof OpenAI.APIError, String(e));
        assert.equal(e.status, 503);
        assert.match(e.message, /fake upstream error 503/);
        return true;
      });
    }
    assert.equal(calls(), 2);
    assert.deepEqual(entries(), []);
  });

  it('a slow upstream is a 504 for the client', async () => {
    const { client, entries } = setup();
    await assert.rejects(client.chat.completions.create(ask('[slow] please wait')),
      (e) => e.status === 504 && /did not answer within/.test(e.message));
    assert.deepEqual(entries(), []);
  });

  it('the completions endpoint caches too', async () => {
    const { client, calls } = setup();
    const a = await client.completions.create({ model: 'c1', prompt: Q });
    const b = await client.completions.create({ model: 'c1', prompt: P });
    assert.equal(b.choices[0].text, a.choices[0].text);
    assert.equal(a.choices[0].text, `completion of [${Q}] from c1`);
    assert.deepEqual(await collect(await client.completions.create({ model: 'c1', prompt: P, stream: true })),
      { text: a.choices[0].text, finish: 'stop' });
    assert.equal(calls(), 1);
  });
});

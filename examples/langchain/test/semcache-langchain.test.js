// Tests of SemcacheFsCache with the real @langchain/core and its fake chat
// models (no network), against a real mount named by SEMCACHE_TEST_MNT
// (tests/90-clients.bats sets it; each test makes its own category).

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, rmdirSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { AIMessage, HumanMessage, SystemMessage } from '@langchain/core/messages';
import { FakeListChatModel, FakeStreamingChatModel } from '@langchain/core/utils/testing';
import { SemcacheFsCache, splitPrompt } from 'semcachefs-langchain';

const MNT = process.env.SEMCACHE_TEST_MNT;
const skip = MNT ? false : 'needs SEMCACHE_TEST_MNT (a semcachefs mount; see tests/90-clients.bats)';

function category() {
  const dir = path.join(MNT, `lc${randomBytes(5).toString('hex')}`);
  mkdirSync(dir);
  return dir;
}

const entries = (dir) => readdirSync(path.join(dir, 'entries'));

describe('SemcacheFsCache', { skip }, () => {
  it('serves a paraphrase from the cache without calling the model', async () => {
    const dir = category();
    const cache = new SemcacheFsCache(dir);
    const model = new FakeListChatModel({ responses: ['use reversed(xs)', 'a second model call'], cache });
    const first = await model.invoke('how do I reverse a list in python');
    assert.equal(first.content, 'use reversed(xs)');
    assert.deepEqual(entries(dir).length, 1);
    const second = await model.invoke('python: reverse a list');
    assert.ok(AIMessage.isInstance(second), 'a cached answer is an AIMessage');
    assert.equal(second.content, 'use reversed(xs)');
    assert.equal(model.i, 1, 'the model ran once');
    const [id] = entries(dir);
    assert.equal(readFileSync(path.join(dir, 'entries', id, 'query'), 'utf8'), 'how do I reverse a list in python');
  });

  it('never shares answers between different llmStrings', async () => {
    const dir = category();
    const cache = new SemcacheFsCache(dir);
    const a = new FakeListChatModel({ responses: ['answer of model A', 'a second call of model A'], cache });
    const b = new FakeStreamingChatModel({ responses: [new AIMessage('answer of model B')], sleep: 0, cache });
    assert.equal((await a.invoke('what is the capital of france')).content, 'answer of model A');
    assert.equal((await b.invoke('what is the capital of france')).content, 'answer of model B');
    assert.equal((await a.invoke('what is the capital of france')).content, 'answer of model A');
    assert.equal((await b.invoke('what is the capital of france')).content, 'answer of model B');
    assert.equal(a.i, 1);
    assert.equal(entries(dir).length, 2);
    // the same prompt under another llmString directly
    assert.equal(await cache.lookup('Human: what is the capital of france', 'another-model'), null);
  });

  it('keeps conversations apart: earlier turns are part of the context', async () => {
    const cache = new SemcacheFsCache(category());
    const model = new FakeListChatModel({ responses: ['he is 42', 'she is 37', 'a third call'], cache });
    const turn = (who) => [new SystemMessage('be brief'), new HumanMessage(`tell me about ${who}`),
      new AIMessage(`${who} is a person`), new HumanMessage('how old is that person?')];
    assert.equal((await model.invoke(turn('bob'))).content, 'he is 42');
    assert.equal((await model.invoke(turn('alice'))).content, 'she is 37');
    assert.equal((await model.invoke(turn('bob'))).content, 'he is 42');
    assert.equal(model.i, 2);
  });

  it('stores the generations with @langchain/core serialization', async () => {
    const dir = category();
    const cache = new SemcacheFsCache(dir);
    await new FakeListChatModel({ responses: ['über naïve ☕ answer'], cache }).invoke('unicode please');
    const [id] = entries(dir);
    const stored = JSON.parse(readFileSync(path.join(dir, 'entries', id, 'response'), 'utf8'));
    assert.equal(stored.format, 'semcachefs-langchain/1');
    assert.equal(stored.generations[0].text, 'über naïve ☕ answer');
    assert.equal(stored.generations[0].message.type, 'ai');
    const got = await cache.lookup('Human: unicode please', new FakeListChatModel({ responses: [] })
      ._getSerializedCacheKeyParametersForCall({}));
    assert.equal(got[0].message.content, 'über naïve ☕ answer');
  });

  it('a removed category rejects, or warns and runs uncached with failOpen', async () => {
    const dir = category();
    const strict = new SemcacheFsCache(dir);
    const open = new SemcacheFsCache(dir, { failOpen: true });
    rmdirSync(dir);
    const model = new FakeListChatModel({ responses: ['uncached answer'], cache: strict });
    await assert.rejects(model.invoke('anything at all'), (e) => e.code === 'ENOENT' && /does not exist/.test(e.message));
    const warnings = [];
    const onWarning = (w) => warnings.push(w);
    process.on('warning', onWarning);
    const lenient = new FakeListChatModel({ responses: ['uncached answer'], cache: open });
    assert.equal((await lenient.invoke('anything at all')).content, 'uncached answer');
    await new Promise((resolve) => setImmediate(resolve)); // warnings are emitted on the next tick
    process.off('warning', onWarning);
    assert.ok(warnings.length >= 1 && warnings.every((w) => w.code === 'ENOENT'), warnings.map(String).join('; '));
  });

  it('splits a chat prompt at the last human turn', () => {
    assert.deepEqual(splitPrompt('System: s\nHuman: a\nAI: b\nHuman: c'), { query: 'c', history: 'System: s\nHuman: a\nAI: b\n' });
    assert.deepEqual(splitPrompt('Human: only'), { query: 'only', history: '' });
    assert.deepEqual(splitPrompt('plain completion prompt'), { query: 'plain completion prompt', history: '' });
  });
});

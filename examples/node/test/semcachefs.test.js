// Tests of the semcachefs Node.js client against a real mount.
// SEMCACHE_TEST_MNT names the mount root (tests/90-clients.bats mounts a
// fresh daemon and sets it); each test makes its own category. The test that
// kills the daemon runs only when SEMCACHE_TEST_DAEMON_PID is set too.
//
//   SEMCACHE_TEST_MNT=/mnt/cache node --test test/

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { Cache, SemcacheError } from 'semcachefs';

const MNT = process.env.SEMCACHE_TEST_MNT;
const skip = MNT ? false : 'needs SEMCACHE_TEST_MNT (a semcachefs mount; see tests/90-clients.bats)';
const Q = 'how do I reverse a list in python';
const P = 'python: reverse a list'; // hits Q at the default threshold

function category(policy) {
  const dir = path.join(MNT, `t${randomBytes(5).toString('hex')}`);
  mkdirSync(dir);
  if (policy) writeFileSync(path.join(dir, 'policy.yaml'), policy);
  return { dir, cache: new Cache(dir) };
}

const sessionFiles = (dir) => readdirSync(dir)
  .filter((n) => n !== 'entries' && n !== 'policy.yaml' && !n.startsWith('.')).sort();

async function rejectsWith(promise, code, text) {
  await assert.rejects(promise, (e) => {
    assert.ok(e instanceof SemcacheError, `not a SemcacheError: ${e}`);
    assert.equal(e.code, code);
    assert.ok(e.message.includes(text), `"${e.message}" lacks "${text}"`);
    return true;
  });
}

describe('protocol', { skip }, () => {
  it('misses, fills, then hits exactly with the same bytes', async () => {
    const { cache } = category();
    const r = await cache.lookup(Q);
    assert.deepEqual([r.hit, r.score, r.entry, r.response, r.status],
      [false, null, null, Buffer.alloc(0), 'miss']);
    assert.match(await cache.fill(r, 'reversed(xs)\n'), /^stored entry=\d+$/);
    const h = await cache.lookup(Q);
    assert.deepEqual([h.hit, h.score, h.entry], [true, 1, r.entry]);
    assert.ok(Buffer.isBuffer(h.response));
    assert.equal(h.text, 'reversed(xs)\n');
    assert.match(h.status, new RegExp(`^hit score=1\\.000 entry=${r.entry} age=\\d+ match=exact$`));
  });

  it('serves a paraphrase as a semantic hit', async () => {
    const { cache } = category();
    await cache.fill(Q, 'reversed(xs)');
    const h = await cache.lookup(P);
    assert.equal(h.hit, true);
    assert.ok(h.score >= 0.9 && h.score < 1, `score ${h.score}`);
    assert.equal(h.text, 'reversed(xs)');
    assert.equal((await cache.lookup('what is the boiling point of water')).hit, false);
  });

  it('keeps contexts apart', async () => {
    const { cache } = category();
    await cache.fill('what did I just say', "A's answer", { context: 'conversation A' });
    assert.equal((await cache.lookup('what did I just say', { context: 'conversation B' })).hit, false);
    assert.equal((await cache.lookup('what did I just say')).hit, false);
    const h = await cache.lookup('what did I just say', { context: Buffer.from('conversation A') });
    assert.equal(h.text, "A's answer");
  });

  it('stores bytes that are not UTF-8 and large answers byte for byte', async () => {
    const { cache } = category();
    const odd = Buffer.from([0xff, 0xfe, 0x00, 0x01, 0xc3, 0x28, 0x0a, 0x0a]);
    await cache.fill('dump the odd bytes', odd);
    assert.deepEqual((await cache.lookup('dump the odd bytes')).response, odd);
    const big = randomBytes(3 << 20);
    await cache.fill(Q, big);
    assert.ok((await cache.lookup(Q)).response.equals(big));
  });

  it('removes session files after fill and close', async () => {
    const { dir, cache } = category();
    const r = await cache.lookup(Q, { context: 'c' });
    assert.equal(sessionFiles(dir).length, 5); // context neighbors query status response
    await cache.fill(r, 'answer');
    assert.deepEqual(sessionFiles(dir), []);
    const h = await cache.lookup(Q, { context: 'c' });
    assert.equal(h.hit, true);
    await h.close();
    assert.deepEqual(sessionFiles(dir), []);
    await rejectsWith(cache.fill(h, 'late'), 'ENOENT', 'session was closed');
  });
});

describe('ask', { skip }, () => {
  it('calls an async llm only on a miss', async () => {
    const { cache } = category();
    const calls = [];
    const llm = async (q) => { calls.push(q); return `answer to [${q}]`; };
    const r = await cache.ask(Q, llm);
    assert.deepEqual([r.hit, r.text, r.status], [false, `answer to [${Q}]`, `stored entry=${r.entry}`]);
    const h = await cache.ask(P, llm);
    assert.deepEqual([h.hit, h.text], [true, `answer to [${Q}]`]);
    assert.deepEqual(calls, [Q]);
    await h.close();
  });

  it('caches nothing when the llm throws or answers nothing', async () => {
    const { dir, cache } = category();
    await assert.rejects(cache.ask(Q, async () => { throw new Error('model down'); }), /model down/);
    assert.deepEqual(sessionFiles(dir), []);
    const r = await cache.ask(Q, () => '');
    assert.deepEqual([r.hit, r.response.length, r.status], [false, 0, 'miss']);
    assert.equal((await cache.lookup(Q)).hit, false);
  });

  it('keeps 16 concurrent asks apart', async () => {
    const { dir, cache } = category();
    const qs = ['how do I reverse a list in python', 'what is the capital of france',
      'how many legs does a spider have', 'explain tcp slow start',
      'who wrote war and peace', 'what is the speed of light in vacuum',
      'how do vaccines train the immune system', 'why is the sky blue'];
    const calls = new Map();
    const llm = async (q) => { calls.set(q, (calls.get(q) ?? 0) + 1); return `answer to [${q}]`; };
    for (let round = 0; round < 3; round++) {
      const got = await Promise.all([...qs, ...qs].map((q) => cache.ask(q, llm)));
      got.forEach((r, i) => assert.equal(r.text, `answer to [${qs[i % qs.length]}]`));
      await Promise.all(got.map((r) => r.close()));
    }
    assert.deepEqual([...calls.keys()].sort(), [...qs].sort());
    for (const [q, n] of calls) assert.ok(n >= 1 && n <= 2, `${q}: ${n} calls`); // only the first round misses
    assert.deepEqual(sessionFiles(dir), []);
  });
});

describe('feedback', { skip }, () => {
  it('invalidates a wrong hit and counts it', async () => {
    const { dir, cache } = category();
    await cache.fill(Q, 'a wrong answer');
    const h = await cache.lookup(P);
    assert.equal(h.hit, true);
    assert.equal(await cache.feedbackWrong(h), `miss reason=reported wrong (entry ${h.entry} invalidated)`);
    assert.equal((await cache.lookup(Q)).hit, false);
    assert.match(readFileSync(path.join(dir, '.stats'), 'utf8'), /^false_hits: 1$/m);
  });

  it('refuses feedback on a miss with ENOENT', async () => {
    const { cache } = category();
    await rejectsWith(cache.feedbackWrong(await cache.lookup(Q)), 'ENOENT', 'not a hit');
  });
});

describe('bad input', { skip }, () => {
  it('an empty query is EINVAL', async () => {
    const { dir, cache } = category();
    for (const q of ['', Buffer.alloc(0), ' \n\t ']) await rejectsWith(cache.lookup(q), 'EINVAL', 'empty query');
    assert.deepEqual(sessionFiles(dir), []);
  });

  it('an oversize query is EFBIG and names the limit', async () => {
    const { dir, cache } = category('limits: {query_bytes: 1KiB}\n');
    assert.equal((await cache.lookup('y'.repeat(1024))).hit, false);
    await rejectsWith(cache.lookup('z'.repeat(1025)), 'EFBIG', `query over limits.query_bytes of '${dir}' (1KiB)`);
  });

  it('an oversize or empty answer is refused and nothing is stored', async () => {
    const { cache } = category('limits: {response_bytes: 16}\n');
    await rejectsWith(cache.fill(Q, 'x'.repeat(17)), 'EFBIG', 'answer over limits.response_bytes');
    await rejectsWith(cache.fill(Q, ''), 'EINVAL', 'empty answer');
    assert.equal((await cache.lookup(Q)).hit, false);
  });

  it('a category that does not exist is ENOENT', async () => {
    assert.throws(() => new Cache(path.join(MNT, 'no-such-category')),
      (e) => e.code === 'ENOENT' && /does not exist/.test(e.message));
    const { dir, cache } = category();
    rmdirSync(dir);
    await rejectsWith(cache.lookup(Q), 'ENOENT', `category '${dir}' does not exist`);
  });

  it('a directory outside semcachefs is ENOTDIR', () => {
    const plain = mkdtempSync(path.join(tmpdir(), 'plain-'));
    assert.throws(() => new Cache(plain), (e) => e.code === 'ENOTDIR' && /not a semcachefs category/.test(e.message));
    assert.deepEqual(readdirSync(plain), []);
    rmdirSync(plain);
  });

  it('a query that is neither a string nor a Buffer is a TypeError', async () => {
    const { cache } = category();
    await assert.rejects(cache.lookup(42), TypeError);
    await assert.rejects(cache.fill(Q, null), TypeError);
  });
});

describe('mount gone', { skip: skip || (process.env.SEMCACHE_TEST_DAEMON_PID ? false : 'needs SEMCACHE_TEST_DAEMON_PID (this test kills the daemon)') }, () => {
  it('a killed daemon is ENOTCONN', async () => {
    const { dir, cache } = category();
    await cache.fill(Q, 'answer');
    process.kill(Number(process.env.SEMCACHE_TEST_DAEMON_PID), 'SIGKILL');
    const deadline = Date.now() + 20000;
    for (;;) {
      try {
        await cache.lookup(Q);
      } catch (e) {
        if (e.code !== 'ENOTCONN' && e.code !== 'ECONNABORTED') throw e; // aborted: in flight
        assert.ok(e.message.includes(`mount of '${dir}' is gone`), e.message);
        if (e.code === 'ENOTCONN') break;
      }
      assert.ok(Date.now() < deadline, 'the daemon did not die');
      await delay(20);
    }
    assert.throws(() => new Cache(dir), (e) => e.code === 'ENOTCONN');
  });
});

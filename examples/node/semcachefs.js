// semcachefs.js - a Node.js client for a semcachefs category, through the mount only.
//
//   import { Cache } from 'semcachefs';
//   const cache = new Cache('/mnt/cache/code');
//   const r = await cache.lookup('how do I reverse a list in python');
//   if (!r.hit) await cache.fill(r, await callYourModel());
//   const a = await cache.ask('python: reverse a list', llm);  // lookup, llm on a miss, fill
//
// How: every lookup gets its own session name (pid, thread id, a counter,
// random bytes) and uses the one-descriptor fast path with fs/promises
// FileHandles: NAME.context is written first when a context is given, then
// NAME.query is opened read-write, the query written and read back from
// offset 0, which runs the lookup and returns the status line, a newline and
// the answer. A fill writes NAME.response, wrong-hit feedback NAME.feedback.
// All file I/O is in class Session, the one place a later persistent-
// descriptor protocol would change.
//
// A Result keeps its session files while they can still be used (a miss
// until it is filled, a hit until feedbackWrong()); result.close() removes
// them, and so does garbage collection as a backstop (the daemon drops
// forgotten ones after its session_ttl). Errors are SemcacheError with .code
// the errno name and a message saying what to do.
//
// No runtime dependencies. Not here: retries, streaming, policy changes, the
// persistent-descriptor protocol (the daemon has none yet).

import { randomBytes } from 'node:crypto';
import { constants, statSync } from 'node:fs';
import { open, readFile, unlink } from 'node:fs/promises';
import { constants as osConstants } from 'node:os';
import path from 'node:path';
import { threadId } from 'node:worker_threads';

const { O_RDWR, O_WRONLY, O_CREAT, O_TRUNC } = constants;
const ERRNO = osConstants.errno;
const SUFFIXES = ['.query', '.status', '.response', '.context', '.feedback', '.neighbors'];
const FIRST_READ = 64 * 1024;
const MAX_READ = 1 << 20;
let counter = 0;

/** An errno from the mount, with a message that says what to do. */
export class SemcacheError extends Error {
  constructor(code, message, file, cause) {
    super(message, cause ? { cause } : undefined);
    this.name = 'SemcacheError';
    this.code = code;
    this.errno = ERRNO[code] ?? ERRNO.EIO;
    this.path = file;
  }
}

function toBuffer(data, what) {
  if (Buffer.isBuffer(data)) return data;
  if (data instanceof Uint8Array) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (typeof data === 'string') return Buffer.from(data, 'utf8');
  throw new TypeError(`${what} must be a string or a Buffer, not ${data === null ? 'null' : typeof data}`);
}

// The effective value of KEY in CATEGORY/.policy, for messages.
async function policyValue(category, key) {
  try {
    const text = await readFile(path.join(category, '.policy'), 'utf8');
    const line = text.split('\n').find((l) => l.startsWith(`${key}:`));
    if (line) return line.slice(key.length + 1).split('#')[0].trim();
  } catch { /* the message goes without it */ }
  return '?';
}

// What each errno means at each step: `${step} ${code}` -> message maker.
const MESSAGES = {
  'open ENOENT': (c) => `category '${c.cat}' does not exist: mkdir it in the mount`,
  'open EINVAL': (c) => `session name '${c.file}' refused by the daemon`,
  'context EFBIG': () => "context over the daemon's 1 MiB context limit: shorten it",
  'query EFBIG': (c) => `query over limits.query_bytes of '${c.cat}' (${c.limit}): shorten it or raise the limit in policy.yaml`,
  'query EINVAL': () => 'empty query: the query must contain more than white space',
  'fill ENOENT': (c) => `no lookup to fill in '${c.file}' (the session was removed or expired after session_ttl): look the query up again`,
  'fill EFBIG': (c) => `answer over limits.response_bytes of '${c.cat}' (${c.limit}): nothing was stored`,
  'fill EINVAL': () => 'empty answer: nothing to store',
  'fill ENOSPC': () => "the cache's store is full: free space, nothing was stored",
  'feedback ENOENT': (c) => `'${c.file}' was not a hit: there is no answer to report`,
  ENOTCONN: (c) => `the semcachefs mount of '${c.cat}' is gone (its daemon stopped): remount it`,
  ECONNABORTED: (c) => `the semcachefs mount of '${c.cat}' is gone (its daemon stopped during the call): remount it`,
  EACCES: (c) => `permission denied on '${c.file}': ask the owner of category '${c.cat}' for read and write access`,
  EPERM: (c) => `operation not permitted on '${c.file}'`,
  ENOTDIR: (c) => `'${c.file}' is not a directory of a semcachefs mount`,
};

async function mapError(err, step, category, file) {
  if (!err || typeof err.code !== 'string' || !err.code.startsWith('E')) return err;
  const code = err.code;
  if (step === 'lookup') step = 'query'; // the read reports what the write could not
  const make = MESSAGES[`${step} ${code}`] ?? MESSAGES[code];
  let limit = '';
  if (code === 'EFBIG' && (step === 'query' || step === 'fill'))
    limit = await policyValue(category, step === 'query' ? 'limits.query_bytes' : 'limits.response_bytes');
  const message = make ? make({ cat: category, file, limit })
    : `${step} of '${file}' failed: ${err.message}`;
  return new SemcacheError(code, message, file, err);
}

async function writeAll(fh, buf) {
  let off = 0;
  while (off < buf.length) {
    const { bytesWritten } = await fh.write(buf, off, buf.length - off, null);
    off += bytesWritten;
  }
}

async function closeQuietly(fh) {
  try { await fh.close(); } catch { /* the outcome was already known */ }
}

/**
 * One session name in one category; every file operation goes through here.
 * Today each call opens its file by path. With a persistent-descriptor
 * protocol this class would keep one O_RDWR NAME.query handle (write at 0
 * starts a query, read at 0 runs it) and one NAME.response handle (write at
 * 0 + sync stores), opened once.
 */
class Session {
  constructor(category, name) {
    this.category = category;
    this.base = path.join(category, name);
    this.removed = false;
  }

  async put(suffix, data, step) {
    const file = this.base + suffix;
    let fh;
    try {
      fh = await open(file, O_WRONLY | O_CREAT | O_TRUNC, 0o600);
    } catch (e) {
      throw await mapError(e, step === 'fill' || step === 'feedback' ? step : 'open', this.category, file);
    }
    try {
      await writeAll(fh, data);
    } catch (e) {
      await closeQuietly(fh); // fails with the same errno: nothing is committed
      throw await mapError(e, step, this.category, file);
    }
    try {
      await fh.close(); // the daemon commits here
    } catch (e) {
      throw await mapError(e, step, this.category, file);
    }
  }

  async status() {
    const file = this.base + '.status';
    try {
      return (await readFile(file, 'utf8')).split('\n')[0];
    } catch (e) {
      throw await mapError(e, 'status', this.category, file);
    }
  }

  /** Run the lookup; resolves to status line + "\n" + answer (a Buffer). */
  async lookup(query, context) {
    if (context !== undefined) await this.put('.context', context, 'context');
    const file = this.base + '.query';
    let fh;
    try {
      fh = await open(file, O_RDWR | O_CREAT | O_TRUNC, 0o600);
    } catch (e) {
      throw await mapError(e, 'open', this.category, file);
    }
    let step = 'query';
    try {
      await writeAll(fh, query);
      step = 'lookup';
      const parts = [];
      let off = 0;
      let size = FIRST_READ;
      for (;;) {
        const buf = Buffer.allocUnsafe(size);
        const { bytesRead } = await fh.read(buf, 0, size, off);
        if (bytesRead === 0) break;
        parts.push(buf.subarray(0, bytesRead));
        off += bytesRead;
        size = MAX_READ;
      }
      return Buffer.concat(parts, off);
    } catch (e) {
      throw await mapError(e, step, this.category, file);
    } finally {
      await closeQuietly(fh);
    }
  }

  async fill(answer) {
    await this.put('.response', answer, 'fill');
    return this.status();
  }

  async feedbackWrong() {
    await this.put('.feedback', Buffer.from('wrong\n'), 'feedback');
    return this.status();
  }

  /** Remove the session's files; errors are ignored (session_ttl removes what is left). */
  async remove() {
    if (this.removed) return;
    this.removed = true;
    await Promise.all(SUFFIXES.map((s) => unlink(this.base + s).catch(() => {})));
  }
}

// Backstop: a Result collected without close() removes its session files.
const collected = new FinalizationRegistry((session) => { session.remove(); });

function parseStatus(line) {
  const [word, ...rest] = line.split(' ');
  const fields = {};
  for (const w of rest) {
    const i = w.indexOf('=');
    if (i > 0) fields[w.slice(0, i)] = w.slice(i + 1);
  }
  return { word, fields };
}

/**
 * The outcome of a lookup (or of ask()): hit (boolean), score (a hit's
 * cosine similarity, else null), entry (the entry that answered or the one
 * a fill stored, else null), response (a Buffer; empty on a miss), status
 * (the daemon's status line).
 */
export class Result {
  constructor(fields, session) {
    Object.assign(this, fields);
    Object.defineProperty(this, 'session', { value: session, writable: true });
    if (session) collected.register(this, session, this);
  }

  /** The response decoded as UTF-8 (invalid bytes replaced). */
  get text() { return this.response.toString('utf8'); }

  /** Remove the session files now (fill and feedbackWrong need them). */
  async close() {
    if (!this.session) return;
    collected.unregister(this);
    await this.session.remove();
  }
}

export class Cache {
  /** categoryDir: a category directory inside a semcachefs mount. */
  constructor(categoryDir) {
    this.category = path.resolve(String(categoryDir));
    let st;
    try {
      st = statSync(this.category);
    } catch (e) {
      if (e.code === 'ENOENT')
        throw new SemcacheError('ENOENT', `category '${this.category}' does not exist: mkdir it in a semcachefs mount`, this.category, e);
      if (e.code === 'ENOTCONN')
        throw new SemcacheError('ENOTCONN', MESSAGES.ENOTCONN({ cat: this.category }), this.category, e);
      throw new SemcacheError(e.code ?? 'EIO', `cannot use '${this.category}': ${e.message}`, this.category, e);
    }
    if (!st.isDirectory())
      throw new SemcacheError('ENOTDIR', `'${this.category}' is not a directory`, this.category);
    try {
      statSync(path.join(this.category, '.policy'));
    } catch (e) {
      throw new SemcacheError('ENOTDIR', `'${this.category}' is not a semcachefs category (mount semcachefs and mkdir the category first)`, this.category, e);
    }
  }

  newSession() {
    counter += 1;
    const name = `js-${process.pid}-${threadId}-${counter}-${randomBytes(4).toString('hex')}`;
    return new Session(this.category, name);
  }

  /**
   * Look query up (string or Buffer; options.context too). Resolves to a
   * Result whose session stays open for fill() or feedbackWrong().
   */
  async lookup(query, { context } = {}) {
    const q = toBuffer(query, 'query');
    const ctx = context === undefined || context === null ? undefined : toBuffer(context, 'context');
    const s = this.newSession();
    let raw;
    try {
      raw = await s.lookup(q, ctx);
    } catch (e) {
      await s.remove();
      throw e;
    }
    const nl = raw.indexOf(10);
    const status = raw.subarray(0, nl < 0 ? raw.length : nl).toString('utf8');
    const answer = nl < 0 ? Buffer.alloc(0) : raw.subarray(nl + 1);
    const { word, fields } = parseStatus(status);
    if (word !== 'hit' && word !== 'miss') {
      await s.remove();
      throw new SemcacheError('EIO', `unexpected status ${JSON.stringify(status.slice(0, 80))} from '${s.base}.query': is it a semcachefs category?`, `${s.base}.query`);
    }
    const hit = word === 'hit';
    return new Result({
      hit,
      score: hit ? Number(fields.score) : null,
      entry: hit ? Number(fields.entry) : null,
      response: hit ? answer : Buffer.alloc(0),
      status,
      query: q,
      context: ctx,
    }, s);
  }

  /**
   * Store answer (string or Buffer, non-empty) for a Result of lookup(), or
   * for a query (with options.context), which is looked up first. Resolves
   * to the status line ("stored entry=N" or "not-stored reason=..."), once
   * the fill is durable.
   */
  async fill(resultOrQuery, answer, { context } = {}) {
    const data = toBuffer(answer, 'answer');
    const r = resultOrQuery instanceof Result ? resultOrQuery
      : await this.lookup(resultOrQuery, { context });
    if (!r.session || r.session.removed)
      throw new SemcacheError('ENOENT', "this result's session was closed: fill with the query instead");
    let status;
    try {
      status = await r.session.fill(data);
    } finally {
      await r.close();
    }
    const { word, fields } = parseStatus(status);
    if (word === 'stored') r.entry = Number(fields.entry);
    r.status = status;
    return status;
  }

  /**
   * Report that result (a hit whose session is still open) served a wrong
   * answer: the daemon invalidates that entry and counts a false hit.
   * Resolves to the new status line.
   */
  async feedbackWrong(result) {
    if (!result.hit)
      throw new SemcacheError('ENOENT', 'the result was not a hit: there is no answer to report');
    if (!result.session || result.session.removed)
      throw new SemcacheError('ENOENT', "this result's session was closed: report before close()");
    try {
      result.status = await result.session.feedbackWrong();
    } finally {
      await result.close();
    }
    return result.status;
  }

  /**
   * The cached answer to query, or await llm(query) stored and returned.
   * llm runs only on a miss; if it throws, nothing is cached; an empty
   * answer is returned but not cached. Resolves to a Result.
   */
  async ask(query, llm, { context } = {}) {
    const r = await this.lookup(query, { context });
    if (r.hit) return r;
    let data;
    try {
      data = toBuffer(await llm(query), "the llm's answer");
    } catch (e) {
      await r.close();
      throw e;
    }
    r.response = data;
    if (data.length) await this.fill(r, data);
    else await r.close();
    return r;
  }
}

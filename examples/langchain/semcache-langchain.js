// semcache-langchain.js - a LangChain.js cache (BaseCache of @langchain/core)
// backed by a semcachefs category, through the mount only.
//
//   import { ChatOpenAI } from '@langchain/openai';
//   import { SemcacheFsCache } from 'semcachefs-langchain';
//   const model = new ChatOpenAI({ model: 'gpt-4o-mini', cache: new SemcacheFsCache('/mnt/cache/chat') });
//
// How: LangChain calls lookup(prompt, llmString) before a model call and
// update(prompt, llmString, generations) after a miss. The prompt of a chat
// model is its messages as text ("System: ...\nHuman: ...\nAI: ..."): the
// last "Human: " turn becomes the semcachefs query, so paraphrases of it hit;
// the llmString (model name and call parameters, built by LangChain) and the
// earlier turns become the context, which a hit must match exactly, so
// different models, parameters or conversations never share answers. The
// generations are stored as JSON made with @langchain/core's own
// serializeGeneration and read back with deserializeStoredGeneration.
//
// Errors (a mount gone, a category removed, an answer over the limits) reject
// lookup()/update() with the client's SemcacheError, so the model call fails;
// with options.failOpen they are emitted as process warnings instead and the
// model runs as if uncached.
//
// A miss's lookup session is kept for the update that follows it (so a
// category with fill_timeout coalesces paraphrases behind it); at most
// `maxPending` of them are kept, the oldest closed first. Not here: wrong-hit
// feedback (use the semcachefs client on the same category), streaming.

import { BaseCache, deserializeStoredGeneration, serializeGeneration } from '@langchain/core/caches';
import { Cache } from 'semcachefs';

const FORMAT = 'semcachefs-langchain/1';
const HUMAN = 'Human: ';

/**
 * Split a LangChain prompt into the query (the last human turn) and the
 * conversation before it. A prompt without a human turn is all query.
 */
export function splitPrompt(prompt) {
  let at = -1;
  if (prompt.startsWith(HUMAN)) at = 0;
  const i = prompt.lastIndexOf(`\n${HUMAN}`);
  if (i >= 0) at = i + 1;
  if (at < 0) return { query: prompt, history: '' };
  return { query: prompt.slice(at + HUMAN.length), history: prompt.slice(0, at) };
}

export class SemcacheFsCache extends BaseCache {
  /**
   * categoryDir: a semcachefs category directory. options.splitTurns
   * (default true): false makes the whole prompt the query. options.maxPending
   * (default 256): miss sessions kept for update(). options.failOpen
   * (default false): errors become warnings and the model runs uncached.
   */
  constructor(categoryDir, { splitTurns = true, maxPending = 256, failOpen = false } = {}) {
    super();
    this.cache = new Cache(categoryDir);
    this.splitTurns = splitTurns;
    this.failOpen = failOpen;
    this.maxPending = maxPending;
    this.pending = new Map(); // key -> [Result] of misses awaiting update()
    this.pendingCount = 0;
  }

  keyParts(prompt, llmString) {
    const { query, history } = this.splitTurns ? splitPrompt(prompt) : { query: prompt, history: '' };
    // JSON keeps the two parts apart whatever characters they hold
    return { query, context: JSON.stringify({ format: FORMAT, llm: llmString, history }) };
  }

  async lookup(prompt, llmString) {
    try {
      return await this.lookupOrThrow(prompt, llmString);
    } catch (e) {
      return this.failed(e, null);
    }
  }

  async update(prompt, llmString, generations) {
    try {
      await this.updateOrThrow(prompt, llmString, generations);
    } catch (e) {
      this.failed(e, undefined);
    }
  }

  failed(err, value) {
    if (!this.failOpen) throw err;
    process.emitWarning(`semcachefs cache: ${err.message}`, { code: err.code ?? 'SEMCACHE' });
    return value;
  }

  async lookupOrThrow(prompt, llmString) {
    const { query, context } = this.keyParts(prompt, llmString);
    if (!query.trim()) return null; // semcachefs refuses empty queries: never cached
    const r = await this.cache.lookup(query, { context });
    if (r.hit) {
      await r.close();
      const stored = parseStored(r.response);
      if (stored) return stored.map((g) => deserializeStoredGeneration(g));
      return null; // not ours: the update replaces it
    }
    this.keepPending(`${context}\n${query}`, r);
    return null;
  }

  async updateOrThrow(prompt, llmString, generations) {
    const { query, context } = this.keyParts(prompt, llmString);
    if (!query.trim()) return;
    const value = JSON.stringify({ format: FORMAT, generations: generations.map((g) => serializeGeneration(g)) });
    const r = this.takePending(`${context}\n${query}`);
    await this.cache.fill(r ?? query, value, { context });
  }

  keepPending(key, result) {
    const list = this.pending.get(key) ?? [];
    list.push(result);
    this.pending.set(key, list);
    this.pendingCount += 1;
    while (this.pendingCount > this.maxPending) {
      const [oldKey, oldList] = this.pending.entries().next().value;
      oldList.shift().close();
      this.pendingCount -= 1;
      if (!oldList.length) this.pending.delete(oldKey);
    }
  }

  takePending(key) {
    const list = this.pending.get(key);
    if (!list) return undefined;
    const r = list.shift();
    this.pendingCount -= 1;
    if (!list.length) this.pending.delete(key);
    return r;
  }
}

function parseStored(buf) {
  try {
    const v = JSON.parse(buf.toString('utf8'));
    if (v && v.format === FORMAT && Array.isArray(v.generations)) return v.generations;
  } catch { /* not JSON: not stored by this cache */ }
  return null;
}

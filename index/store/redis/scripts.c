/*
 * scripts.c - the Lua scripts of the Redis backend: every change to the
 * store is one script, so it is atomic, replicated and AOF-logged as one
 * unit, and touches the keys of one slot only (one category's, or the
 * global ones), so it runs unchanged on a Redis Cluster.
 *
 * Each script that changes what the hosts see (all but touch, get and
 * cat_drop; touch has a stream of its own, see there) also bumps its stream's evseq, XADDs an event {h: the writer's
 * host id, n: evseq, k: kind, ...} to its category's (or the global)
 * stream (MAXLEN ~ STREAM_MAXLEN) and PUBLISHes the category's tag on
 * HINT_CHANNEL as a wake-up hint for the watchers (watch.c). The put,
 * delete, touch and quota scripts keep the quota structures ({cC}:lru,
 * {cC}:lfu, {cC}:bytes) up to date (quota.c). Each script's table entry
 * (struct redis_script) names its KEYS in order; redis_arg_script starts
 * a call with them, and the comment above each script gives the ARGV the
 * caller (category.c, entry.c, quota.c, watch.c) adds in that order.
 *
 * Request ids: a command may reach the server twice (a resend after a
 * closed connection, rconn_i.h), so every script whose second run would
 * do something else ("once" in its table entry) is wrapped by LUA_ONCE:
 * its last KEY is {TAG}:rq:RID and its last ARGV RID, a request id unique
 * to the call (this host's id and a counter); the first run keeps its
 * result there for RQ_TTL_S seconds, a second run only returns it. Every
 * such script answers { RID, result }, so a caller can tell its own reply
 * from anything else (a corrupted or misrouted one). Touch, drop and get
 * may run twice as they are. The cancel script makes a put that failed in
 * doubt (entry.c) never take effect: it removes the entry if the put ran
 * and leaves a marker that turns a later run of it into a no-op.
 *
 * Calls: a script is sent by its SHA-1 (EVALSHA, sha1.c), computed here
 * once per process; a server that does not know it (a SCRIPT FLUSH, a
 * restart, a cluster node that never ran it) answers NOSCRIPT and gets the
 * source once (EVAL, call.c), which also caches it there again.
 *
 * What not: no SCRIPT LOAD (EVAL loads a script where it is missing), no
 * script touches two slots.
 */
#include "redis_i.h"
#include "semlog.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* The once wrapper (see the top): the body is a function whose result is
 * kept under KEYS[#KEYS] and answered as { ARGV[#ARGV], result }. */
#define LUA_ONCE_HEAD \
	"local rq = KEYS[#KEYS]\n" \
	"local done = redis.call('GET', rq)\n" \
	"if done then return { ARGV[#ARGV], cjson.decode(done)[1] } end\n" \
	"local function body()\n"
#define LUA_ONCE_TAIL \
	"end\n" \
	"local r = body()\n" \
	"redis.call('SET', rq, cjson.encode({ r }), 'EX', " RQ_TTL_S ")\n" \
	"return { ARGV[#ARGV], r }\n"

/* ARGV id path packed host maxlen rid; returns 1, or 0 when the path
 * exists */
static const char lua_cat_register[] =
	LUA_ONCE_HEAD
	"if redis.call('HEXISTS', KEYS[1], ARGV[2]) == 1 then return 0 end\n"
	"redis.call('HSET', KEYS[1], ARGV[2], ARGV[1])\n"
	"redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])\n"
	"local n = redis.call('INCR', KEYS[4])\n"
	"redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], '*', 'h', ARGV[4],"
	" 'n', n, 'k', 'c', 'id', ARGV[1], 'c', ARGV[3])\n"
	"redis.call('PUBLISH', '" HINT_CHANNEL "', '{semcache}')\n"
	"return 1\n"
	LUA_ONCE_TAIL;
const struct redis_script redis_script_cat_register = { lua_cat_register, {
	":paths", ":cats", ":stream", ":evseq" },
	true, false, REDIS_SCRIPT_ID };

/* ARGV id host maxlen rid; returns the removed "MODE UID GID CREATED
 * PATH", or nil when there is no such category. A damaged value (no path
 * in it) is removed with every path that names the id, so the path never
 * stays taken. */
static const char lua_cat_unregister[] =
	LUA_ONCE_HEAD
	"local v = redis.call('HGET', KEYS[2], ARGV[1])\n"
	"if not v then return false end\n"
	"local path = string.match(v, '^%S+ %S+ %S+ %S+ (.*)$')\n"
	"if path and redis.call('HGET', KEYS[1], path) == ARGV[1] then\n"
	"  redis.call('HDEL', KEYS[1], path)\n"
	"else\n"
	"  local all = redis.call('HGETALL', KEYS[1])\n"
	"  for i = 1, #all, 2 do\n"
	"    if all[i + 1] == ARGV[1] then redis.call('HDEL', KEYS[1], all[i]) end\n"
	"  end\n"
	"end\n"
	"redis.call('HDEL', KEYS[2], ARGV[1])\n"
	"local n = redis.call('INCR', KEYS[4])\n"
	"redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', 'h', ARGV[2],"
	" 'n', n, 'k', 'x', 'id', ARGV[1], 'c', v)\n"
	"redis.call('PUBLISH', '" HINT_CHANNEL "', '{semcache}')\n"
	"return v\n"
	LUA_ONCE_TAIL;
const struct redis_script redis_script_cat_unregister = { lua_cat_unregister, {
	":paths", ":cats", ":stream", ":evseq" },
	true, false, REDIS_SCRIPT_ID };

/* ARGV id "MODE UID GID" host maxlen rid; returns the new "MODE UID GID
 * CREATED PATH", or nil when there is no such category (or its value is
 * damaged) */
static const char lua_cat_attr[] =
	LUA_ONCE_HEAD
	"local v = redis.call('HGET', KEYS[1], ARGV[1])\n"
	"if not v then return false end\n"
	"local created, path = string.match(v, '^%S+ %S+ %S+ (%S+) (.*)$')\n"
	"if not path then return false end\n"
	"local nv = ARGV[2] .. ' ' .. created .. ' ' .. path\n"
	"redis.call('HSET', KEYS[1], ARGV[1], nv)\n"
	"local n = redis.call('INCR', KEYS[3])\n"
	"redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'h', ARGV[3],"
	" 'n', n, 'k', 'a', 'id', ARGV[1], 'c', nv)\n"
	"redis.call('PUBLISH', '" HINT_CHANNEL "', '{semcache}')\n"
	"return nv\n"
	LUA_ONCE_TAIL;
const struct redis_script redis_script_cat_attr = { lua_cat_attr, {
	":cats", ":stream", ":evseq" }, true, false, REDIS_SCRIPT_ID };

/* ARGV tag batch; deletes alive, policy, the quota keys, the hits stream
 * and up to batch entries, and once none is left stream, evseq and next;
 * returns the number of entries left */
static const char lua_cat_drop[] =
	"redis.call('DEL', KEYS[1], KEYS[3], KEYS[7], KEYS[8], KEYS[9],"
	" KEYS[10], KEYS[11], KEYS[12], KEYS[13])\n"
	"local s = redis.call('ZRANGE', KEYS[2], 0, tonumber(ARGV[2]) - 1)\n"
	"for _, x in ipairs(s) do redis.call('DEL', ARGV[1] .. ':e:' .. x) end\n"
	"if #s > 0 then redis.call('ZREM', KEYS[2], unpack(s)) end\n"
	"local left = redis.call('ZCARD', KEYS[2])\n"
	"if left == 0 then redis.call('DEL', KEYS[4], KEYS[5], KEYS[6]) end\n"
	"return left\n";
const struct redis_script redis_script_cat_drop = { lua_cat_drop, {
	":alive", ":ids", ":policy", ":stream", ":evseq", ":next", ":lru",
	":lfu", ":bytes", ":qok", ":evicted", ":hstream", ":hseq" }, false, false,
	REDIS_SCRIPT_ID };

/* ARGV tag op('s' set | 'r' remove) yaml host maxlen rid; returns 1, or
 * -1 for no such category (set) or no policy (remove) */
static const char lua_policy[] =
	LUA_ONCE_HEAD
	"if ARGV[2] == 's' then\n"
	"  if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end\n"
	"  redis.call('SET', KEYS[2], ARGV[3])\n"
	"elseif redis.call('DEL', KEYS[2]) == 0 then return -1 end\n"
	"local n = redis.call('INCR', KEYS[4])\n"
	"if ARGV[2] == 's' then\n"
	"  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], '*', 'h', ARGV[4],"
	"   'n', n, 'k', 'y', 'y', ARGV[3])\n"
	"else\n"
	"  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], '*', 'h', ARGV[4],"
	"   'n', n, 'k', 'y')\n"
	"end\n"
	"redis.call('PUBLISH', '" HINT_CHANNEL "', ARGV[1])\n"
	"return 1\n"
	LUA_ONCE_TAIL;
const struct redis_script redis_script_policy = { lua_policy, {
	":alive", ":policy", ":stream", ":evseq" },
	true, false, REDIS_SCRIPT_ID };

/*
 * Shared by the scripts that keep the quota structures: u64(m, at) reads
 * the little-endian u64 at byte offset at of packed meta m (0: created,
 * 8: bytes); order_add(lru, lfu, seq, hits, t) files an entry under last
 * use t (ms, clamped below 2^42 so that lfu's fraction stays below 1).
 */
#define LUA_QUOTA_LIB \
	"local function u64(m, at)\n" \
	"  local x = 0\n" \
	"  if m and #m >= at + 8 then\n" \
	"    for i = at + 8, at + 1, -1 do x = x * 256 + string.byte(m, i) end\n" \
	"  end\n" \
	"  return x\n" \
	"end\n" \
	"local function order_add(lru, lfu, s, h, t)\n" \
	"  if t < 0 then t = 0 end\n" \
	"  if t >= 4398046511104 then t = 4398046511103 end\n" \
	"  redis.call('ZADD', lru, string.format('%.17g', t), s)\n" \
	"  redis.call('ZADD', lfu,\n" \
	"   string.format('%.17g', h + t / 4398046511104), s)\n" \
	"end\n"

/* ARGV tag meta query hasctx ctx vec embedder response hits last host
 * maxlen use rid; returns the new entry's sequence, or -1 for no such
 * category. The entry keeps rid in its field i (for cancel). */
static const char lua_put[] =
	LUA_QUOTA_LIB
	LUA_ONCE_HEAD
	"if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end\n"
	"local seq = redis.call('INCR', KEYS[2])\n"
	"local k = ARGV[1] .. ':e:' .. seq\n"
	"redis.call('HSET', k, 'm', ARGV[2], 'q', ARGV[3], 'v', ARGV[6],"
	" 'em', ARGV[7], 'r', ARGV[8], 'h', ARGV[9], 't', ARGV[10],"
	" 'i', ARGV[#ARGV])\n"
	"if ARGV[4] == '1' then redis.call('HSET', k, 'c', ARGV[5]) end\n"
	"redis.call('ZADD', KEYS[3], seq, seq)\n"
	"order_add(KEYS[6], KEYS[7], seq, tonumber(ARGV[9]) or 0,"
	" tonumber(ARGV[13]) or 0)\n"
	"redis.call('INCRBY', KEYS[8], #ARGV[8])\n"
	"local n = redis.call('INCR', KEYS[5])\n"
	"redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[12], '*', 'h', ARGV[11],"
	" 'n', n, 'k', 'p', 's', seq)\n"
	"redis.call('PUBLISH', '" HINT_CHANNEL "', ARGV[1])\n"
	"return seq\n"
	LUA_ONCE_TAIL;
const struct redis_script redis_script_put = { lua_put, {
	":alive", ":next", ":ids", ":stream", ":evseq", ":lru", ":lfu", ":bytes" },
	true, false, REDIS_SCRIPT_ID };

/*
 * Shared by del, expire and cancel: drop_entry(tag, ids, stream, evseq,
 * lru, lfu, bytes, seq, host, maxlen, x) removes entry seq with its quota
 * records and streams a 'd' event (with x = 1 when x is true: an expiry);
 * 1, or 0 when there is no such entry.
 */
#define LUA_DROP_ENTRY \
	"local function drop_entry(tag, ids, stream, evseq, lru, lfu, bytes," \
	" seq, host, maxlen, x)\n" \
	"  if redis.call('ZREM', ids, seq) == 0 then return 0 end\n" \
	"  local k = tag .. ':e:' .. seq\n" \
	"  local b = u64(redis.call('HGET', k, 'm'), 8)\n" \
	"  redis.call('DEL', k)\n" \
	"  redis.call('ZREM', lru, seq)\n" \
	"  redis.call('ZREM', lfu, seq)\n" \
	"  redis.call('DECRBY', bytes, string.format('%.17g', b))\n" \
	"  local n = redis.call('INCR', evseq)\n" \
	"  if x then\n" \
	"    redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 'h', host," \
	"     'n', n, 'k', 'd', 's', seq, 'x', '1')\n" \
	"  else\n" \
	"    redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 'h', host," \
	"     'n', n, 'k', 'd', 's', seq)\n" \
	"  end\n" \
	"  redis.call('PUBLISH', '" HINT_CHANNEL "', tag)\n" \
	"  return 1\n" \
	"end\n"

/* ARGV tag seq host maxlen rid; returns 1, or 0 when there is no such
 * entry */
static const char lua_del[] =
	LUA_QUOTA_LIB
	LUA_DROP_ENTRY
	LUA_ONCE_HEAD
	"return drop_entry(ARGV[1], KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5],"
	" KEYS[6], ARGV[2], ARGV[3], ARGV[4])\n"
	LUA_ONCE_TAIL;
const struct redis_script redis_script_del = { lua_del, {
	":ids", ":stream", ":evseq", ":lru", ":lfu", ":bytes" },
	true, false, REDIS_SCRIPT_ID };

/*
 * ARGV tag seq ttl_ms sliding(0|1) now host maxlen rid. Expiry decided
 * once, here: entry seq goes (with a 'd' event carrying x = 1) when now is
 * at least ttl_ms after its creation, or with sliding after its last hit
 * as the touches of every host left it (t). Returns 1 when it went, 0 when
 * it has not expired, -1 when there is no such entry.
 */
static const char lua_expire[] =
	LUA_QUOTA_LIB
	LUA_DROP_ENTRY
	LUA_ONCE_HEAD
	"local v = redis.call('HMGET', ARGV[1] .. ':e:' .. ARGV[2], 'm', 't')\n"
	"if not v[1] then return -1 end\n"
	"local base, t = u64(v[1], 0), tonumber(v[2]) or 0\n"
	"if ARGV[4] == '1' and t > base then base = t end\n"
	"if (tonumber(ARGV[5]) or 0) < base + (tonumber(ARGV[3]) or 0) then"
	" return 0 end\n"
	"if drop_entry(ARGV[1], KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5],"
	" KEYS[6], ARGV[2], ARGV[6], ARGV[7], true) == 0 then return -1 end\n"
	"return 1\n"
	LUA_ONCE_TAIL;
const struct redis_script redis_script_expire = { lua_expire, {
	":ids", ":stream", ":evseq", ":lru", ":lfu", ":bytes" },
	true, false, REDIS_SCRIPT_ID };

/*
 * ARGV tag rid host maxlen scan. Cancels the put of request rid: its kept
 * result (KEYS[7], the put's {TAG}:rq:RID) names its sequence, else the
 * newest scan entries are searched for field i = rid; that entry is
 * removed. The put's kept result becomes 'x' for CANCEL_TTL_S, so that a
 * put still on its way does nothing. Returns 1 when an entry was removed,
 * else 0. Running it twice is harmless.
 */
static const char lua_cancel[] =
	LUA_QUOTA_LIB
	LUA_DROP_ENTRY
	"local tag, seq = ARGV[1], nil\n"
	"local done = redis.call('GET', KEYS[7])\n"
	"if done then\n"
	"  local r = cjson.decode(done)[1]\n"
	"  if type(r) == 'number' and r > 0 then seq = string.format('%d', r) end\n"
	"else\n"
	"  local s = redis.call('ZREVRANGE', KEYS[1], 0, tonumber(ARGV[5]) - 1)\n"
	"  for _, x in ipairs(s) do\n"
	"    if redis.call('HGET', tag .. ':e:' .. x, 'i') == ARGV[2] then\n"
	"      seq = x\n"
	"      break\n"
	"    end\n"
	"  end\n"
	"end\n"
	"redis.call('SET', KEYS[7], cjson.encode({ 'x' }), 'EX', " CANCEL_TTL_S ")\n"
	"if not seq then return 0 end\n"
	"return drop_entry(tag, KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5],"
	" KEYS[6], seq, ARGV[3], ARGV[4])\n";
const struct redis_script redis_script_cancel = { lua_cancel, {
	":ids", ":stream", ":evseq", ":lru", ":lfu", ":bytes" },
	false, true, REDIS_SCRIPT_ID };

/*
 * ARGV tag host maxlen (seq own last)...: hit counts summed over the
 * hosts. own is host's own count on the entry (it only grows), kept in the
 * entry's field o:HOST; its growth since that field is added to h, so a
 * batch run twice, or an own count sent again, adds nothing. t becomes the
 * latest of all. The entry is filed under the sum in the lfu order (and t
 * in lru). When anything moved, one 'h' event on the category's hits
 * stream (not its change stream: they come at every write-back, and a
 * short history is enough, see watch.c) carries b = "seq h t ..." of the
 * entries that did, for the other hosts. Returns (h t) per seq in
 * ARGV's order, h -1 for an entry that is gone.
 */
static const char lua_touch[] =
	LUA_QUOTA_LIB
	"local tag, host, out, ev = ARGV[1], 'o:' .. ARGV[2], {}, {}\n"
	"for i = 4, #ARGV, 3 do\n"
	"  local k = tag .. ':e:' .. ARGV[i]\n"
	"  local v = redis.call('HMGET', k, 'h', 't', 'm', host)\n"
	"  if v[3] then\n"
	"    local h, t = tonumber(v[1]) or 0, tonumber(v[2]) or 0\n"
	"    local own, nt = tonumber(ARGV[i+1]) or 0, tonumber(ARGV[i+2]) or 0\n"
	"    local old, moved = tonumber(v[4]) or 0, false\n"
	"    if own > old then\n"
	"      if not tonumber(v[1]) then redis.call('HSET', k, 'h', '0') end\n"
	"      h = redis.call('HINCRBY', k, 'h', own - old)\n"
	"      redis.call('HSET', k, host, ARGV[i+1])\n"
	"      moved = true\n"
	"    end\n"
	"    if nt > t then redis.call('HSET', k, 't', ARGV[i+2]); t = nt; moved = true end\n"
	"    local ot = t\n"
	"    if ot == 0 then ot = u64(v[3], 0) end\n"
	"    order_add(KEYS[2], KEYS[3], ARGV[i], h, ot)\n"
	"    out[#out + 1] = h\n"
	"    out[#out + 1] = t\n"
	"    if moved then\n"
	"      ev[#ev + 1] = string.format('%s %d %d', ARGV[i], h, t)\n"
	"    end\n"
	"  else\n"
	"    out[#out + 1] = -1\n"
	"    out[#out + 1] = 0\n"
	"  end\n"
	"end\n"
	"if #ev > 0 then\n"
	"  local n = redis.call('INCR', KEYS[5])\n"
	"  redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[3], '*', 'h', ARGV[2],"
	"   'n', n, 'k', 'h', 'b', table.concat(ev, ' '))\n"
	"  redis.call('PUBLISH', '" HINT_CHANNEL "', tag)\n"
	"end\n"
	"return out\n";
const struct redis_script redis_script_touch = { lua_touch, {
	":ids", ":lru", ":lfu", ":hstream", ":hseq" }, false, false,
	REDIS_SCRIPT_ID };

/*
 * ARGV tag entries bytes order(f|l|u) keep host maxlen limit rid. Evicts at
 * most limit entries (limit >= 1; 0 evicts nothing) until the category
 * fits, never keep; returns { keep gone (0|1), seq... }. Rebuilds lru, lfu
 * and bytes first when qok is missing.
 */
static const char lua_quota[] =
	LUA_QUOTA_LIB
	LUA_ONCE_HEAD
	"local tag, ids, lru, lfu, bytes = ARGV[1], KEYS[1], KEYS[2], KEYS[3],"
	" KEYS[4]\n"
	"if redis.call('EXISTS', KEYS[5]) == 0 then\n"
	"  redis.call('DEL', lru, lfu, bytes)\n"
	"  local b = 0\n"
	"  for _, s in ipairs(redis.call('ZRANGE', ids, 0, -1)) do\n"
	"    local v = redis.call('HMGET', tag .. ':e:' .. s, 'm', 'h', 't')\n"
	"    local t = tonumber(v[3]) or 0\n"
	"    if t == 0 then t = u64(v[1], 0) end\n"
	"    order_add(lru, lfu, s, tonumber(v[2]) or 0, t)\n"
	"    b = b + u64(v[1], 8)\n"
	"  end\n"
	"  redis.call('SET', bytes, string.format('%.17g', b))\n"
	"  redis.call('SET', KEYS[5], '1')\n"
	"end\n"
	"local maxn, maxb = tonumber(ARGV[2]) or 0, tonumber(ARGV[3]) or 0\n"
	"local keep, limit = ARGV[5], tonumber(ARGV[8]) or 1\n"
	"local n = redis.call('ZCARD', ids)\n"
	"local b = tonumber(redis.call('GET', bytes) or '0') or 0\n"
	"local z = ids\n"
	"if ARGV[4] == 'l' then z = lru elseif ARGV[4] == 'u' then z = lfu end\n"
	"local out = { (keep == '0' or redis.call('ZSCORE', ids, keep))"
	" and 0 or 1 }\n"
	"local skip = 0\n"
	"while #out - 1 < limit and ((maxn > 0 and n > maxn) or"
	" (maxb > 0 and b > maxb)) do\n"
	"  local v = redis.call('ZRANGE', z, skip, skip)[1]\n"
	"  if not v and z ~= ids then\n"
	"    z, skip = ids, 0\n"
	"  elseif not v then\n"
	"    break\n"
	"  elseif v == keep then\n"
	"    skip = skip + 1\n"
	"  else\n"
	"    redis.call('ZREM', lru, v)\n"
	"    redis.call('ZREM', lfu, v)\n"
	"    if redis.call('ZREM', ids, v) == 1 then\n"
	"      local k = tag .. ':e:' .. v\n"
	"      local eb = u64(redis.call('HGET', k, 'm'), 8)\n"
	"      redis.call('DEL', k)\n"
	"      redis.call('DECRBY', bytes, string.format('%.17g', eb))\n"
	"      n, b = n - 1, b - eb\n"
	"      local e = redis.call('INCR', KEYS[8])\n"
	"      redis.call('XADD', KEYS[7], 'MAXLEN', '~', ARGV[7], '*', 'h',"
	" ARGV[6], 'n', e, 'k', 'd', 's', v, 'e', '1')\n"
	"      out[#out + 1] = v\n"
	"    end\n"
	"  end\n"
	"end\n"
	"if #out > 1 then\n"
	"  redis.call('INCRBY', KEYS[6], #out - 1)\n"
	"  redis.call('PUBLISH', '" HINT_CHANNEL "', tag)\n"
	"end\n"
	"return out\n"
	LUA_ONCE_TAIL;
const struct redis_script redis_script_quota = { lua_quota, {
	":ids", ":lru", ":lfu", ":bytes", ":qok", ":evicted", ":stream", ":evseq" },
	true, false, REDIS_SCRIPT_ID };

/* ARGV tag 'r' lo count | tag 'l' seq...; returns the last seq
 * looked at, then (seq m h t v em) per live entry */
static const char lua_get[] =
	"local seqs\n"
	"if ARGV[2] == 'r' then\n"
	"  seqs = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[3], '+inf',"
	"   'LIMIT', 0, tonumber(ARGV[4]))\n"
	"else\n"
	"  seqs = {}\n"
	"  for i = 3, #ARGV do seqs[#seqs + 1] = ARGV[i] end\n"
	"end\n"
	"local out = { seqs[#seqs] or '' }\n"
	"for _, s in ipairs(seqs) do\n"
	"  local v = redis.call('HMGET', ARGV[1] .. ':e:' .. s,"
	"   'm', 'h', 't', 'v', 'em')\n"
	"  if v[1] then\n"
	"    out[#out + 1] = s\n"
	"    for j = 1, 5 do out[#out + 1] = v[j] or '' end\n"
	"  end\n"
	"end\n"
	"return out\n";
const struct redis_script redis_script_get = { lua_get, {
	":ids" }, false, false, REDIS_SCRIPT_ID };

/* sc's hash: computed by the first caller and kept; a caller that finds
 * it being computed computes its own copy into buf. */
static const char *script_sha(const struct redis_script *sc, char buf[41])
{
	struct redis_script_id *id = sc->id;
	int none = 0;

	if (atomic_load_explicit(&id->state, memory_order_acquire) == 2)
		return id->hex;
	if (atomic_compare_exchange_strong(&id->state, &none, 1)) {
		redis_sha1_hex(sc->src, strlen(sc->src), id->hex);
		atomic_store_explicit(&id->state, 2, memory_order_release);
		return id->hex;
	}
	redis_sha1_hex(sc->src, strlen(sc->src), buf);
	return buf;
}

/*
 * ARGV '+' | ARGV from count. With '+': { entries, evseq, the last event's
 * id ("0-0" for none) } (evseq is the n of that event: both change in one
 * script). Else: { entries, evseq, (id n k s)... } of up to count events
 * after from (n, k or s "" when the event has none); for resume.c.
 */
static const char lua_resume[] =
	"local out = { redis.call('ZCARD', KEYS[1]),"
	" redis.call('GET', KEYS[3]) or '0' }\n"
	"if ARGV[1] == '+' then\n"
	"  local t = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)\n"
	"  out[3] = t[1] and t[1][1] or '0-0'\n"
	"  return out\n"
	"end\n"
	"local r = redis.call('XRANGE', KEYS[2], '(' .. ARGV[1], '+', 'COUNT',"
	" tonumber(ARGV[2]))\n"
	"for _, e in ipairs(r) do\n"
	"  local v = { n = '', k = '', s = '' }\n"
	"  for i = 1, #e[2], 2 do\n"
	"    if v[e[2][i]] then v[e[2][i]] = e[2][i + 1] end\n"
	"  end\n"
	"  out[#out + 1] = e[1]\n"
	"  out[#out + 1] = v.n\n"
	"  out[#out + 1] = v.k\n"
	"  out[#out + 1] = v.s\n"
	"end\n"
	"return out\n";
const struct redis_script redis_script_resume = { lua_resume, {
	":ids", ":stream", ":evseq" }, false, false, REDIS_SCRIPT_ID };

/* ARGV tag lo count; returns the last seq looked at, then (seq h t) per
 * live entry after lo: the hit counters a local copy does not keep
 * current (resume.c) */
static const char lua_hits[] =
	"local seqs = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[2],"
	" '+inf', 'LIMIT', 0, tonumber(ARGV[3]))\n"
	"local out = { seqs[#seqs] or '' }\n"
	"for _, s in ipairs(seqs) do\n"
	"  local v = redis.call('HMGET', ARGV[1] .. ':e:' .. s, 'h', 't')\n"
	"  out[#out + 1] = s\n"
	"  out[#out + 1] = v[1] or ''\n"
	"  out[#out + 1] = v[2] or ''\n"
	"end\n"
	"return out\n";
const struct redis_script redis_script_hits = { lua_hits, {
	":ids" }, false, false, REDIS_SCRIPT_ID };

void redis_arg_script(struct args *a, const struct redis_script *sc,
		      const char *tag, const char *rid)
{
	int n = 0;
	bool rq = sc->once || sc->rq_key;
	char sha[41];

	while (n < REDIS_SCRIPT_KEYS && sc->keys[n])
		n++;
	if (rq && !rid)
		BUG("script needs a request id");
	arg_eval(a, sc->src, script_sha(sc, sha), n + (rq ? 1 : 0));
	for (int i = 0; i < n; i++)
		arg_f(a, "%s%s", tag, sc->keys[i]);
	if (rq)
		arg_f(a, "%s:rq:%s", tag, rid);
}

void redis_rid(struct store_redis *s, char *rid)
{
	unsigned long long n = (unsigned long long)atomic_fetch_add(&s->rid_next, 1);

	snprintf(rid, 40, "%s.%llx", s->host_id, n);
}

int redis_once_call(struct rconn *rc, const char *tag, struct args *a,
		    const char *rid, const char *what, int type,
		    int nil_errno, bool *sent, redisReply **out)
{
	redisReply *r = NULL, *res;
	const redisReply *echo;
	int ret;

	if (out)
		*out = NULL;
	arg_s(a, rid);
	ret = rconn_call_sent(rc, tag, a, what, REDIS_REPLY_ARRAY, -EPROTO, sent,
			      &r);
	if (ret)
		return ret;
	echo = rconn_elem_str(r, 0);
	if (r->elements != 2 || !echo || echo->len != strlen(rid) ||
	    memcmp(echo->str, rid, echo->len)) {
		freeReplyObject(r);
		return rconn_bad_reply(rc, what, "the reply is not this request's "
				       "(its request id is missing or another)");
	}
	res = r->element[1];
	if (res->type == REDIS_REPLY_NIL) {
		ret = nil_errno;
	} else if (res->type == REDIS_REPLY_ERROR ||
		   (type && res->type != type)) {
		ret = rconn_bad_reply(rc, what, "the result has the wrong type");
	} else if (out) {
		r->element[1] = NULL;   /* detached: freeReplyObject skips NULL */
		*out = res;
	}
	freeReplyObject(r);
	return ret;
}

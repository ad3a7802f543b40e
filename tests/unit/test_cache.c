/*
 * test_cache.c - the engine end to end, below FUSE: real store in a temp
 * directory, real FAISS, the built-in embedder.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache.h"
#include "check.h"

static struct cache *open_cache(const char *dir)
{
	struct cache_options o = { .store_dir = dir, .quiet = true };
	struct cache *c = NULL;
	char err[256];
	int rc = cache_open(&o, &c, err, sizeof(err));

	if (rc)
		fprintf(stderr, "cache_open: %s\n", err);
	CHECK_EQ_INT(rc, 0);
	return c;
}

static int ask(struct cache *c, const char *cat, const char *q, const char *ctx,
	       struct cache_result *r)
{
	struct cache_query cq = { q, strlen(q), ctx, ctx ? strlen(ctx) : 0 };

	return cache_lookup(c, cat, &cq, r);
}

static int64_t fill(struct cache *c, const char *cat, const char *q,
		    const char *ctx, const char *answer)
{
	struct cache_query cq = { q, strlen(q), ctx, ctx ? strlen(ctx) : 0 };
	struct cache_result r;
	int64_t id = 0;
	bool stored = false;

	CHECK_EQ_INT(cache_lookup(c, cat, &cq, &r), 0);
	CHECK_EQ_INT(cache_fill(c, cat, &cq, &r, answer, strlen(answer), NULL, &id, &stored), 0);
	CHECK(stored);
	cache_result_release(&r);
	return id;
}

static bool hit_with(struct cache *c, const char *cat, const char *q,
		     const char *ctx, const char *answer)
{
	struct cache_result r;
	bool ok;

	if (ask(c, cat, q, ctx, &r))
		return false;
	ok = r.outcome == CACHE_HIT && r.response_len == strlen(answer) &&
	     !memcmp(r.response, answer, r.response_len);
	cache_result_release(&r);
	return ok;
}

static bool misses(struct cache *c, const char *cat, const char *q, const char *ctx)
{
	struct cache_result r;
	bool ok;

	if (ask(c, cat, q, ctx, &r))
		return false;
	ok = r.outcome == CACHE_MISS && !r.response;
	cache_result_release(&r);
	return ok;
}

int main(void)
{
	char dir[] = "/tmp/semcache-test-cache-XXXXXX";
	const char *ans = "use reversed(xs) or xs[::-1]";
	struct cache_result r;
	struct cache *c;
	char cmd[256];
	int64_t id;
	bool stored;

	CHECK(mkdtemp(dir) != NULL);
	c = open_cache(dir);
	if (!c)
		return check_done("cache");
	CHECK_EQ_INT(cache_category_create(c, "/code", 0755, getuid(), getgid()), 0);
	CHECK_EQ_INT(cache_category_create(c, "/code", 0755, getuid(), getgid()), -EEXIST);
	CHECK_EQ_INT(cache_category_create(c, "/chat", 0755, getuid(), getgid()), 0);
	CHECK_EQ_INT(cache_category_create(c, "/nope/deeper", 0755, 0, 0), -ENOENT);

	CHECK(misses(c, "/code", "how do I reverse a list in python", NULL));
	id = fill(c, "/code", "how do I reverse a list in python", NULL, ans);
	CHECK(id > 0);
	/* exact (normalised) */
	CHECK_EQ_INT(ask(c, "/code", "  How do I reverse a LIST in python\n", NULL, &r), 0);
	CHECK(r.outcome == CACHE_HIT && r.exact && r.entry_id == id);
	cache_result_release(&r);
	/* paraphrase */
	CHECK_EQ_INT(ask(c, "/code", "python: reverse a list", NULL, &r), 0);
	CHECK(r.outcome == CACHE_HIT && !r.exact && r.score >= 0.9f);
	cache_result_release(&r);
	/* unrelated, other category, context */
	CHECK(misses(c, "/code", "what is the capital of france", NULL));
	CHECK(misses(c, "/chat", "how do I reverse a list in python", NULL));
	CHECK(misses(c, "/code", "how do I reverse a list in python", "we talk about lisp"));
	fill(c, "/chat", "how old is he?", "conversation about Obama", "63");
	CHECK(misses(c, "/chat", "how old is he?", "conversation about Biden"));
	CHECK(misses(c, "/chat", "how old is he?", NULL));
	CHECK(hit_with(c, "/chat", "how old is he?", "conversation about Obama", "63"));

	/* bad input */
	CHECK_EQ_INT(ask(c, "/code", " \n\t ", NULL, &r), -EINVAL);
	CHECK_EQ_INT(ask(c, "/missing", "x", NULL, &r), -ENOENT);
	{
		struct cache_query cq = { "q", 1, NULL, 0 };

		CHECK_EQ_INT(cache_fill(c, "/code", &cq, NULL, "", 0, NULL, &id, &stored), -EINVAL);
	}
	{
		static const char bin[] = { 'a', 0, (char)0xff, (char)0xfe, 'b' };
		struct cache_query cq = { bin, sizeof(bin), NULL, 0 };

		CHECK_EQ_INT(cache_fill(c, "/code", &cq, NULL, bin, sizeof(bin), NULL, &id, &stored), 0);
		CHECK_EQ_INT(cache_lookup(c, "/code", &cq, &r), 0);
		CHECK(r.outcome == CACHE_HIT && r.response_len == sizeof(bin));
		cache_result_release(&r);
	}

	/* policies: invalid rejected, valid applied, threshold change applies */
	CHECK_EQ_INT(cache_policy_put(c, "/code", "treshold: 0.5\n", 14, NULL), -EINVAL);
	CHECK_EQ_INT(cache_policy_put(c, "/code", "threshold: 0.999\n", 17, NULL), 0);
	CHECK(misses(c, "/code", "python: reverse a list", NULL));
	CHECK_EQ_INT(cache_policy_put(c, "/code", NULL, 0, NULL), 0);
	CHECK(hit_with(c, "/code", "python: reverse a list", NULL, ans));
	CHECK_EQ_INT(cache_category_remove(c, "/code"), -ENOTEMPTY);

	/* persistence */
	cache_close(c);
	c = open_cache(dir);
	if (!c)
		return check_done("cache");
	CHECK(hit_with(c, "/code", "python: reverse a list", NULL, ans));
	CHECK(hit_with(c, "/code", "how do I reverse a list in python", NULL, ans));
	CHECK(hit_with(c, "/chat", "how old is he?", "conversation about Obama", "63"));

	/* context: similar: an entry filled under match gets its context
	 * vector from the stored text; reworded contexts hit, others miss,
	 * and so again after a reopen */
	CHECK_EQ_INT(cache_category_create(c, "/sim", 0755, getuid(), getgid()), 0);
	fill(c, "/sim", "how old is he?", "we are talking about Barack Obama", "63");
	CHECK(misses(c, "/sim", "how old is he?", "talking about Barack Obama"));
	CHECK_EQ_INT(cache_policy_put(c, "/sim", "context: similar\ncontext_threshold: 0.6\n", 40, NULL), 0);
	CHECK(hit_with(c, "/sim", "how old is he?", "talking about Barack Obama", "63"));
	CHECK(misses(c, "/sim", "how old is he?", "talking about the Eiffel tower"));
	CHECK(misses(c, "/sim", "how old is he?", NULL));
	fill(c, "/sim", "how tall is it?", "talking about the Eiffel tower", "330 m");
	CHECK(hit_with(c, "/sim", "how tall is it?", "the Eiffel tower, we talk about", "330 m"));
	CHECK(misses(c, "/sim", "how tall is it?", "talking about Barack Obama"));
	cache_close(c);
	c = open_cache(dir);
	if (!c)
		return check_done("cache");
	CHECK(hit_with(c, "/sim", "how old is he?", "talking about Barack Obama", "63"));
	CHECK(hit_with(c, "/sim", "how tall is it?", "the Eiffel tower, we talk about", "330 m"));
	CHECK(misses(c, "/sim", "how tall is it?", "talking about Barack Obama"));
	CHECK_EQ_INT(cache_policy_put(c, "/sim", "context: similar\ncontext_threshold: 0.999\n", 42, NULL), 0);
	CHECK(misses(c, "/sim", "how old is he?", "talking about Barack Obama"));
	CHECK(hit_with(c, "/sim", "how old is he?", "we are talking about Barack Obama", "63"));

	/* ttl: expiry judged at lookup */
	CHECK_EQ_INT(cache_policy_put(c, "/chat", "ttl: 1s\n", 8, NULL), 0);
	usleep(1100 * 1000);
	CHECK(misses(c, "/chat", "how old is he?", "conversation about Obama"));
	cache_close(c);

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	CHECK_EQ_INT(system(cmd), 0);
	return check_done("cache");
}

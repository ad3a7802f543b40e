/*
 * node.c - the table of in-memory session and scratch files (node.h).
 *
 * One hash table keyed by (kind, directory, name) with chaining; a node is
 * freed when it is unlinked and its last reference is put (a scratch
 * node's bytes are then credited back to its creator's cap, quota.h). A
 * rename moves a node that is still in the table only: one unlinked
 * meanwhile is never put back without the table's reference. Listing a
 * directory or checking that it is empty walks every bucket (4096): fine
 * for the rare rmdir and readdir, not for a hot path.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hash.h"
#include "clock.h"
#include "node.h"
#include "quota.h"

#define NBUCKETS 4096

static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static struct node *buckets[NBUCKETS];      /* table_lock */

static uint64_t node_hash(enum node_kind kind, const char *dir, const char *name)
{
	uint64_t h = hash64(dir, strlen(dir), 0x5e5510) ^ (uint64_t)kind;

	return hash64(name, strlen(name), h);
}

static void node_free(struct node *n)
{
	if (n->kind == NODE_SCRATCH)
		quota_charge(n->uid, -(int64_t)n->data.len);
	buf_release(&n->query);
	buf_release(&n->context);
	buf_release(&n->response);
	buf_release(&n->data);
	buf_release(&n->feedback);
	buf_release(&n->neighbors);
	cache_result_release(&n->result);
	pthread_cond_destroy(&n->cv);
	pthread_mutex_destroy(&n->lock);
	free(n->dir);
	free(n->name);
	free(n);
}

/* The node of (kind, dir, name) with hash h, or NULL. table_lock held. */
static struct node *find(uint64_t h, enum node_kind kind, const char *dir,
			 const char *name)
{
	struct node *n;

	for (n = buckets[h % NBUCKETS]; n; n = n->next)
		if (n->hkey == h && n->kind == kind && !strcmp(n->dir, dir) &&
		    !strcmp(n->name, name))
			break;
	return n;
}

struct node *node_get(enum node_kind kind, const char *dir, const char *name,
		      int flags)
{
	uint64_t h = node_hash(kind, dir, name);
	struct node *n;

	pthread_mutex_lock(&table_lock);
	n = find(h, kind, dir, name);
	if (!n && (flags & NODE_CREATE)) {
		n = calloc(1, sizeof(*n));
		if (n) {
			n->dir = strdup(dir);
			n->name = strdup(name);
			if (!n->dir || !n->name) {
				free(n->dir);
				free(n->name);
				free(n);
				n = NULL;
			}
		}
		if (n) {
			n->kind = kind;
			n->hkey = h;
			n->mode = 0644;
			pthread_mutex_init(&n->lock, NULL);
			pthread_cond_init(&n->cv, NULL);
			n->next = buckets[h % NBUCKETS];
			buckets[h % NBUCKETS] = n;
			n->refs = 1; /* the table's own */
		}
	}
	if (n) {
		n->refs++;
		if (flags & (NODE_TOUCH | NODE_CREATE))
			n->used_ms = clock_wall_ms();
	}
	pthread_mutex_unlock(&table_lock);
	return n;
}

void node_put(struct node *n, bool touch)
{
	bool last;

	pthread_mutex_lock(&table_lock);
	if (touch)
		n->used_ms = clock_wall_ms();
	last = --n->refs == 0;
	pthread_mutex_unlock(&table_lock);
	if (last)
		node_free(n);
}

/* Called with table_lock held; drops the table's reference. */
static bool detach(struct node *n)
{
	struct node **pp = &buckets[n->hkey % NBUCKETS];

	for (; *pp; pp = &(*pp)->next) {
		if (*pp == n) {
			*pp = n->next;
			n->next = NULL;
			return --n->refs == 0;
		}
	}
	return false;
}

void node_unlink(struct node *n)
{
	bool last;

	pthread_mutex_lock(&table_lock);
	last = detach(n);
	pthread_mutex_unlock(&table_lock);
	if (last)
		node_free(n);
}

int node_rename(struct node *n, const char *name, bool noreplace)
{
	uint64_t h = node_hash(n->kind, n->dir, name);
	char *nn = strdup(name);
	struct node *m, **pp;
	bool free_m = false;
	int rc = 0;

	if (!nn)
		return -ENOMEM;
	pthread_mutex_lock(&table_lock);
	for (pp = &buckets[n->hkey % NBUCKETS]; *pp && *pp != n; pp = &(*pp)->next)
		;
	m = find(h, n->kind, n->dir, name);
	if (!*pp) {
		rc = -ENOENT; /* unlinked meanwhile: never put it back */
	} else if (m == n) {
		/* renamed onto itself: nothing changes */
	} else if (m && noreplace) {
		rc = -EEXIST;
	} else {
		if (m)
			free_m = detach(m);
		/* pp may have moved if m was n's neighbour: find n again */
		for (pp = &buckets[n->hkey % NBUCKETS]; *pp != n; pp = &(*pp)->next)
			;
		*pp = n->next;
		free(n->name);
		n->name = nn;
		nn = NULL;
		n->hkey = h;
		n->next = buckets[h % NBUCKETS];
		buckets[h % NBUCKETS] = n;
	}
	pthread_mutex_unlock(&table_lock);
	if (free_m)
		node_free(m);
	free(nn);
	return rc;
}

int node_foreach(const char *dir, void (*cb)(void *arg, struct node *n),
		 void *arg)
{
	struct node **list = NULL;
	size_t len = 0, cap = 0;
	int rc = 0;

	pthread_mutex_lock(&table_lock);
	for (size_t i = 0; i < NBUCKETS && !rc; i++) {
		for (struct node *n = buckets[i]; n && !rc; n = n->next) {
			if (strcmp(n->dir, dir))
				continue;
			if (len == cap) {
				size_t ncap = cap ? cap * 2 : 64;
				struct node **nl = realloc(list, ncap * sizeof(*nl));

				if (!nl) {
					rc = -ENOMEM;
					break;
				}
				list = nl;
				cap = ncap;
			}
			n->refs++;
			list[len++] = n;
		}
	}
	pthread_mutex_unlock(&table_lock);
	for (size_t i = 0; i < len; i++) {
		if (!rc)
			cb(arg, list[i]);
		node_put(list[i], false);
	}
	free(list);
	return rc;
}

bool node_dir_busy(const char *dir)
{
	bool busy = false;

	pthread_mutex_lock(&table_lock);
	for (size_t i = 0; i < NBUCKETS && !busy; i++)
		for (struct node *n = buckets[i]; n && !busy; n = n->next)
			busy = !strcmp(n->dir, dir);
	pthread_mutex_unlock(&table_lock);
	return busy;
}

size_t node_gc(int64_t idle_ms)
{
	int64_t now = clock_wall_ms();
	struct node *dead = NULL;
	size_t count = 0;

	pthread_mutex_lock(&table_lock);
	for (size_t i = 0; i < NBUCKETS; i++) {
		struct node **pp = &buckets[i];

		while (*pp) {
			struct node *n = *pp;

			if (n->refs == 1 && now - n->used_ms > idle_ms) {
				*pp = n->next;
				n->next = dead;
				dead = n;
				count++;
			} else {
				pp = &n->next;
			}
		}
	}
	pthread_mutex_unlock(&table_lock);
	while (dead) {
		struct node *n = dead;

		dead = n->next;
		node_free(n);
	}
	return count;
}

void node_table_release(void)
{
	node_gc(-1);
}

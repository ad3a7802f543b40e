/*
 * test_node.c - the table of in-memory files (fs/node.c) and the scratch
 * caps (fs/quota.c), below FUSE: references, renames (including one of a
 * node unlinked meanwhile, which must never come back into the table),
 * listing without the table's lock, and charging bytes to users.
 */
#include <errno.h>
#include <string.h>

#include "check.h"
#include "node.h"
#include "quota.h"

static int count_cb_calls;

static void count_cb(void *arg, struct node *n)
{
	pthread_mutex_lock(&n->lock); /* allowed: no table lock held */
	count_cb_calls += !strcmp(n->dir, (const char *)arg);
	pthread_mutex_unlock(&n->lock);
}

static void test_rename_of_unlinked_node(void)
{
	struct node *n = node_get(NODE_SCRATCH, "/c", "a", NODE_CREATE);
	struct node *m;

	CHECK(n != NULL);
	node_unlink(n); /* e.g. rm of the file while a rename holds it */
	CHECK_EQ_INT(node_rename(n, "b", false), -ENOENT);
	m = node_get(NODE_SCRATCH, "/c", "b", 0);
	CHECK(m == NULL); /* never linked back without the table's reference */
	if (m)
		node_put(m, false);
	node_put(n, false); /* the last reference: freed */
	m = node_get(NODE_SCRATCH, "/c", "b", 0);
	CHECK(m == NULL);
}

static void test_rename_replaces_or_refuses(void)
{
	struct node *a = node_get(NODE_SCRATCH, "/c", "a", NODE_CREATE);
	struct node *b = node_get(NODE_SCRATCH, "/c", "b", NODE_CREATE);
	struct node *x;

	CHECK_EQ_INT(node_rename(a, "b", true), -EEXIST);
	x = node_get(NODE_SCRATCH, "/c", "b", 0);
	CHECK(x == b);
	node_put(x, false);
	CHECK_EQ_INT(node_rename(a, "a", false), 0); /* onto itself */
	CHECK_EQ_INT(node_rename(a, "b", false), 0);
	x = node_get(NODE_SCRATCH, "/c", "b", 0);
	CHECK(x == a);
	node_put(x, false);
	x = node_get(NODE_SCRATCH, "/c", "a", 0);
	CHECK(x == NULL);
	/* b left the table, yet our reference keeps it alive */
	CHECK(!strcmp(b->name, "b"));
	node_put(b, false);
	node_unlink(a);
	node_put(a, false);
}

static void test_foreach(void)
{
	struct node *n[3];

	n[0] = node_get(NODE_SESSION, "/d", "s", NODE_CREATE);
	n[1] = node_get(NODE_SCRATCH, "/d", "t", NODE_CREATE);
	n[2] = node_get(NODE_SCRATCH, "/e", "t", NODE_CREATE);
	count_cb_calls = 0;
	CHECK_EQ_INT(node_foreach("/d", count_cb, "/d"), 0);
	CHECK_EQ_INT(count_cb_calls, 2);
	CHECK(node_dir_busy("/e"));
	for (int i = 0; i < 3; i++) {
		node_unlink(n[i]);
		node_put(n[i], false);
	}
	CHECK(!node_dir_busy("/d"));
}

static void test_quota(void)
{
	quota_set_limits(100, 60);
	CHECK_EQ_INT(quota_charge(1, 50), 0);
	CHECK_EQ_INT(quota_charge(1, 11), -EDQUOT); /* 61 > the user's 60 */
	CHECK_EQ_INT(quota_charge(2, 50), 0);
	CHECK_EQ_INT(quota_charge(2, 1), -ENOSPC);  /* 101 > the mount's 100 */
	CHECK_EQ_INT(quota_used(1), 50);
	CHECK_EQ_INT(quota_used((uid_t)-1), 100);
	CHECK_EQ_INT(quota_charge(1, -50), 0);
	CHECK_EQ_INT(quota_used(1), 0);
	CHECK_EQ_INT(quota_charge(2, 10), 0);
	CHECK_EQ_INT(quota_charge(2, -60), 0);
	CHECK_EQ_INT(quota_used((uid_t)-1), 0);
	CHECK_EQ_INT(quota_charge(3, -5), 0); /* a credit never goes negative */
	CHECK_EQ_INT(quota_used(3), 0);
}

int main(void)
{
	test_rename_of_unlinked_node();
	test_rename_replaces_or_refuses();
	test_foreach();
	test_quota();
	node_table_release();
	return check_done("node");
}

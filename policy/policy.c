/*
 * policy.c - the life of a policy: built-in defaults, a parsed file applied
 * over an inherited policy, and the file freed.
 *
 * Design: the effective policy of a directory is policy_defaults(), then
 * policy_apply() of the root's file, then of each directory's file down to
 * it; each apply copies only the keys the file sets (its set[] flags) and
 * records the file's source as their provenance. Fields are reached
 * through the key table's offsets, so nothing here names a key.
 *
 * It does not find, read or order the files: the caller (the engine)
 * walks the directories and owns every struct policy_file, which must
 * outlive the struct policy whose source[] points into it.
 */
#include "policy_i.h"
#include "semlog.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *policy_field(const struct policy_key_spec *ks, struct policy *p)
{
	return (char *)p + ks->offset;
}

const void *policy_cfield(const struct policy_key_spec *ks,
			  const struct policy *p)
{
	return (const char *)p + ks->offset;
}

size_t policy_field_size(const struct policy_key_spec *ks)
{
	switch (ks->type) {
	case VT_FLOAT:
		return sizeof(double);
	case VT_DURATION:
	case VT_MILLIS:
	case VT_SIZE:
	case VT_COUNT:
		return sizeof(int64_t);
	case VT_INT:
	case VT_ENUM:
		return sizeof(int);
	case VT_BOOL:
		return sizeof(bool);
	case VT_STRING:
		return (size_t)ks->max + 1;
	}
	BUG("unknown value type");
}

void policy_defaults(struct policy *p)
{
	size_t k;

	memset(p, 0, sizeof(*p));
	for (k = 0; k < POLICY_NKEYS; k++) {
		const struct policy_key_spec *ks = &policy_key_specs[k];
		void *field = policy_field(ks, p);
		int i = (int)ks->def;
		bool b = ks->def != 0;

		switch (ks->type) {
		case VT_FLOAT:
			memcpy(field, &ks->fdef, sizeof(double));
			break;
		case VT_DURATION:
		case VT_MILLIS:
		case VT_SIZE:
		case VT_COUNT:
			memcpy(field, &ks->def, sizeof(int64_t));
			break;
		case VT_INT:
		case VT_ENUM:
			memcpy(field, &i, sizeof(i));
			break;
		case VT_BOOL:
			memcpy(field, &b, sizeof(b));
			break;
		case VT_STRING:
			snprintf(field, policy_field_size(ks), "%s", ks->sdef);
			break;
		}
		p->source[k] = NULL;
	}
}

void policy_file_free(struct policy_file *f)
{
	if (!f)
		return;
	free(f->source);
	free(f);
}

bool policy_file_sets(const struct policy_file *f, enum policy_key k)
{
	if ((unsigned)k >= POLICY_NKEYS)
		BUG("policy key out of range");
	return f->set[k];
}

void policy_apply(struct policy *p, const struct policy_file *f)
{
	size_t k;

	for (k = 0; k < POLICY_NKEYS; k++) {
		const struct policy_key_spec *ks = &policy_key_specs[k];

		if (!f->set[k])
			continue;
		memcpy(policy_field(ks, p), policy_cfield(ks, &f->values),
		       policy_field_size(ks));
		p->source[k] = f->source;
	}
}

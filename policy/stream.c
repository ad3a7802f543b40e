/*
 * stream.c - a policy.yaml's bytes as a bounded stream of YAML events.
 *
 * Design: libyaml's event API (yaml_parser_parse), one event at a time, so
 * the parser never builds a document and never reads further than the walk
 * (parse.c) asks. Each event is checked as it arrives: a mapping or sequence
 * nested deeper than POLICY_DEPTH_MAX stops the stream with an error (the
 * key table needs 2 levels; libyaml's scanner costs time per token that
 * grows with the nesting of flow collections, so stopping early keeps the
 * whole parse linear in the input), and anchors and aliases are resolved
 * here the way libyaml's loader does it (an alias must name an earlier
 * anchor of the same document; an anchor name is used once), with at most
 * POLICY_ANCHORS_MAX anchors per document. Errors of the stream itself
 * (syntax, depth, anchors, memory) are "fatal": they end the parse, and
 * parse.c lets them win over an error of meaning found earlier, as the
 * document API did.
 *
 * It does not know the keys or what a value means (parse.c does), and it
 * bounds nothing but depth and anchors: the caller refuses large inputs
 * first. No global state; one stream is used by one thread.
 */
#include "policy_i.h"
#include "semlog.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int policy_fail(struct policy_error *err, yaml_mark_t mark, const char *fmt, ...)
{
	va_list ap;

	err->line = mark.line >= INT_MAX ? INT_MAX : (int)mark.line + 1;
	err->column = mark.column >= INT_MAX ? INT_MAX : (int)mark.column + 1;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static int nomem(struct policy_stream *s)
{
	s->fatal = true;
	s->err->line = s->err->column = 0;
	snprintf(s->err->message, sizeof(s->err->message),
		 "out of memory while parsing yaml");
	return -ENOMEM;
}

/* libyaml's own error, with its position and context. */
static int syntax_error(struct policy_stream *s)
{
	const yaml_parser_t *parser = &s->parser;
	yaml_mark_t mark = parser->problem_mark;
	const char *problem = parser->problem ? parser->problem : "unknown error";
	size_t i;

	s->fatal = true;
	if (parser->error == YAML_MEMORY_ERROR)
		return nomem(s);
	if (parser->error == YAML_READER_ERROR) {
		/* reader errors carry a byte offset, not a mark */
		memset(&mark, 0, sizeof(mark));
		for (i = 0; i < parser->problem_offset && i < s->len; i++) {
			if (s->yaml[i] == '\n') {
				mark.line++;
				mark.column = 0;
			} else {
				mark.column++;
			}
		}
		return policy_fail(s->err, mark, "invalid yaml: %s at byte %zu",
				   problem, parser->problem_offset);
	}
	if (parser->context)
		return policy_fail(s->err, mark,
				   "invalid yaml: %s (%s at line %zu, column %zu)",
				   problem, parser->context,
				   parser->context_mark.line + 1,
				   parser->context_mark.column + 1);
	return policy_fail(s->err, mark, "invalid yaml: %s", problem);
}

static void anchors_clear(struct policy_stream *s)
{
	for (size_t i = 0; i < s->nanchors; i++) {
		free(s->anchors[i].name);
		free(s->anchors[i].value);
	}
	s->nanchors = 0;
}

static const struct policy_anchor *anchor_find(const struct policy_stream *s,
					       const unsigned char *name)
{
	for (size_t i = 0; i < s->nanchors; i++)
		if (strcmp(s->anchors[i].name, (const char *)name) == 0)
			return &s->anchors[i];
	return NULL;
}

/* Record the anchor of the current node event, if it has one. */
static int anchor_add(struct policy_stream *s, const unsigned char *name)
{
	const struct policy_anchor *old;
	struct policy_anchor *a;
	const yaml_event_t *ev = &s->ev;
	char shown[48];

	if (!name)
		return 0;
	policy_show((const char *)name, strlen((const char *)name), shown,
		    sizeof(shown));
	old = anchor_find(s, name);
	if (old) {
		s->fatal = true;
		return policy_fail(s->err, ev->start_mark,
				   "invalid yaml: found duplicate anchor '%s' "
				   "(first occurrence at line %zu, column %zu)",
				   shown, old->mark.line + 1, old->mark.column + 1);
	}
	if (s->nanchors == POLICY_ANCHORS_MAX) {
		s->fatal = true;
		return policy_fail(s->err, ev->start_mark,
				   "invalid yaml: anchor '%s' is one more than the "
				   "%d a policy may define", shown,
				   POLICY_ANCHORS_MAX);
	}
	a = &s->anchors[s->nanchors];
	memset(a, 0, sizeof(*a));
	a->name = strdup((const char *)name);
	if (!a->name)
		return nomem(s);
	a->mark = ev->start_mark;
	if (ev->type == YAML_SCALAR_EVENT) {
		a->type = YAML_SCALAR_NODE;
		a->style = ev->data.scalar.style;
		a->length = ev->data.scalar.length;
		a->value = malloc(a->length + 1);
		if (!a->value) {
			free(a->name);
			return nomem(s);
		}
		memcpy(a->value, ev->data.scalar.value, a->length);
		a->value[a->length] = '\0';
	} else {
		a->type = ev->type == YAML_MAPPING_START_EVENT ?
			  YAML_MAPPING_NODE : YAML_SEQUENCE_NODE;
	}
	s->nanchors++;
	return 0;
}

int policy_stream_init(struct policy_stream *s, const char *yaml, size_t len,
		       struct policy_error *err)
{
	memset(s, 0, sizeof(*s));
	s->yaml = yaml;
	s->len = len;
	s->err = err;
	if (!yaml_parser_initialize(&s->parser))
		return nomem(s);
	yaml_parser_set_input_string(&s->parser, (const unsigned char *)yaml, len);
	return 0;
}

void policy_stream_release(struct policy_stream *s)
{
	if (s->have_ev)
		yaml_event_delete(&s->ev);
	s->have_ev = false;
	anchors_clear(s);
	yaml_parser_delete(&s->parser);
}

int policy_stream_next(struct policy_stream *s)
{
	yaml_event_t *ev = &s->ev;

	if (s->fatal)
		BUG("policy_stream_next after a fatal error");
	if (s->have_ev)
		yaml_event_delete(ev);
	s->have_ev = false;
	if (!yaml_parser_parse(&s->parser, ev))
		return syntax_error(s);
	s->have_ev = true;
	switch (ev->type) {
	case YAML_MAPPING_START_EVENT:
	case YAML_SEQUENCE_START_EVENT:
		if (++s->depth > POLICY_DEPTH_MAX) {
			s->fatal = true;
			return policy_fail(s->err, ev->start_mark,
					   "nested deeper than %d levels (a "
					   "policy needs 2, like 'quota: "
					   "{entries: 3}')", POLICY_DEPTH_MAX);
		}
		return anchor_add(s, ev->type == YAML_MAPPING_START_EVENT ?
				  ev->data.mapping_start.anchor :
				  ev->data.sequence_start.anchor);
	case YAML_MAPPING_END_EVENT:
	case YAML_SEQUENCE_END_EVENT:
		s->depth--;
		return 0;
	case YAML_SCALAR_EVENT:
		return anchor_add(s, ev->data.scalar.anchor);
	case YAML_ALIAS_EVENT:
		if (anchor_find(s, ev->data.alias.anchor))
			return 0;
		s->fatal = true;
		return policy_fail(s->err, ev->start_mark,
				   "invalid yaml: found undefined alias");
	case YAML_DOCUMENT_START_EVENT:
	case YAML_DOCUMENT_END_EVENT:
		anchors_clear(s); /* anchors belong to one document */
		return 0;
	default:
		return 0;
	}
}

void policy_stream_node(const struct policy_stream *s, struct policy_node *n)
{
	const yaml_event_t *ev = &s->ev;
	const struct policy_anchor *a;

	memset(n, 0, sizeof(*n));
	n->mark = ev->start_mark;
	switch (ev->type) {
	case YAML_SCALAR_EVENT:
		n->type = YAML_SCALAR_NODE;
		n->value = (const char *)ev->data.scalar.value;
		n->length = ev->data.scalar.length;
		n->style = ev->data.scalar.style;
		return;
	case YAML_MAPPING_START_EVENT:
		n->type = YAML_MAPPING_NODE;
		return;
	case YAML_SEQUENCE_START_EVENT:
		n->type = YAML_SEQUENCE_NODE;
		return;
	case YAML_ALIAS_EVENT:
		a = anchor_find(s, ev->data.alias.anchor);
		if (!a)
			BUG("an alias without its anchor passed the stream");
		/* as the document API did: the node the anchor is on */
		n->alias = true;
		n->type = a->type;
		n->mark = a->mark;
		n->value = a->value;
		n->length = a->length;
		n->style = a->style;
		return;
	default:
		BUG("policy_stream_node on an event that is not a node");
	}
}

/* core_index.c: what the core looks up per message without walking every connection: sockets
 * before connect and held-open sockets per client address, held sockets by requestId, and the
 * list of authenticated operators (the audience of pairing events).
 *
 * A connection is indexed by its (closing, state, role, ip, request_id) while it is live; every
 * change of those goes through core_conn_set_state() or core_close(), which take it out of the
 * index and put it back, so the counts can never drift from a walk of the list. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core_internal.h"

struct core_ip_count {
	struct core_ip_count *next;
	unsigned preauth, held;
	char ip[CORE_IP_MAX];
};

static size_t hash_str(const char *s)
{
	size_t h = 1469598103934665603ull; /* FNV-1a */

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

static struct core_ip_count **ip_slot(struct core *core, const char *ip)
{
	struct core_ip_count **p = &core->ip_counts[hash_str(ip) % CORE_INDEX_BUCKETS];

	while (*p && strcmp((*p)->ip, ip) != 0)
		p = &(*p)->next;
	return p;
}

static void ip_add(struct core *core, const char *ip, int preauth, int held)
{
	struct core_ip_count **p = ip_slot(core, ip), *e = *p;

	if (!e) {
		if (preauth < 0 || held < 0)
			return; /* nothing counted: nothing to take away */
		e = calloc(1, sizeof(*e));
		if (!e)
			return; /* the limit for this address goes uncounted, nothing worse */
		snprintf(e->ip, sizeof(e->ip), "%s", ip);
		*p = e;
	}
	e->preauth = (unsigned)((int)e->preauth + preauth);
	e->held = (unsigned)((int)e->held + held);
	if (!e->preauth && !e->held) {
		*p = e->next;
		free(e);
	}
}

static bool is_operator(const struct core_conn *c)
{
	return c->state == CONN_AUTHED && !c->is_node;
}

static void index_conn(struct core *core, struct core_conn *c, int dir)
{
	if (c->closing)
		return;
	if (c->state == CONN_PREAUTH) {
		ip_add(core, c->ip, dir, 0);
	} else if (c->state == CONN_HELD) {
		struct core_conn **p = &core->held[hash_str(c->request_id) % CORE_INDEX_BUCKETS];

		ip_add(core, c->ip, 0, dir);
		core->n_held = (unsigned)((int)core->n_held + dir);
		if (dir > 0) {
			c->held_next = *p;
			*p = c;
		} else {
			while (*p && *p != c)
				p = &(*p)->held_next;
			if (*p)
				*p = c->held_next;
			c->held_next = NULL;
		}
	} else if (is_operator(c)) {
		if (dir > 0) {
			c->op_prev = NULL;
			c->op_next = core->ops;
			if (core->ops)
				core->ops->op_prev = c;
			core->ops = c;
		} else {
			if (c->op_prev)
				c->op_prev->op_next = c->op_next;
			else
				core->ops = c->op_next;
			if (c->op_next)
				c->op_next->op_prev = c->op_prev;
			c->op_prev = c->op_next = NULL;
		}
	}
}

void core_index_add(struct core *core, struct core_conn *c)
{
	index_conn(core, c, +1);
}

void core_index_remove(struct core *core, struct core_conn *c)
{
	index_conn(core, c, -1);
}

void core_conn_set_state(struct core *core, struct core_conn *c, enum conn_state state)
{
	index_conn(core, c, -1);
	c->state = state;
	index_conn(core, c, +1);
}

unsigned core_count_preauth(struct core *core, const char *ip)
{
	struct core_ip_count *e = *ip_slot(core, ip);

	return e ? e->preauth : 0;
}

unsigned core_count_held(struct core *core, const char *ip, const struct core_conn *except)
{
	unsigned n;
	bool except_counted = except && !except->closing && except->state == CONN_HELD &&
	                      (!ip || strcmp(except->ip, ip) == 0);

	if (ip) {
		struct core_ip_count *e = *ip_slot(core, ip);

		n = e ? e->held : 0;
	} else {
		n = core->n_held;
	}
	return except_counted && n ? n - 1 : n;
}

struct core_conn *core_find_held(struct core *core, const char *request_id,
                                 const struct core_conn *except)
{
	for (struct core_conn *c = core->held[hash_str(request_id) % CORE_INDEX_BUCKETS]; c;
	     c = c->held_next)
		if (c != except && strcmp(c->request_id, request_id) == 0)
			return c;
	return NULL;
}

void core_index_free(struct core *core)
{
	for (size_t i = 0; i < CORE_INDEX_BUCKETS; i++) {
		while (core->ip_counts[i]) {
			struct core_ip_count *e = core->ip_counts[i];

			core->ip_counts[i] = e->next;
			free(e);
		}
		core->held[i] = NULL;
	}
	core->ops = NULL;
	core->n_held = 0;
}

bool core_index_consistent(struct core *core)
{
	unsigned held = 0, ops = 0, listed_ops = 0;

	for (struct core_conn *c = core->conns; c; c = c->next) {
		if (c->closing)
			continue;
		if (c->state == CONN_PREAUTH) {
			unsigned n = 0;

			for (struct core_conn *d = core->conns; d; d = d->next)
				if (!d->closing && d->state == CONN_PREAUTH &&
				    !strcmp(d->ip, c->ip))
					n++;
			if (core_count_preauth(core, c->ip) != n)
				return false;
		} else if (c->state == CONN_HELD) {
			held++;
			if (core_find_held(core, c->request_id, NULL) != c)
				return false;
		} else if (is_operator(c)) {
			ops++;
		}
	}
	for (struct core_conn *c = core->ops; c; c = c->op_next) {
		if (c->closing || !is_operator(c))
			return false;
		listed_ops++;
	}
	return held == core->n_held && ops == listed_ops;
}

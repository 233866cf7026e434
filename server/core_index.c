/* core_index.c: what the core looks up per message without walking every connection: sockets
 * before connect and held-open sockets per client address, held sockets by requestId, and the
 * list of authenticated operators (the audience of pairing events); and the limits of spec §8.8
 * that count per client address: pre-auth sockets (oldest closed first) and pending requests.
 *
 * A connection is indexed by its (closing, state, role, ip, request_id) while it is live; every
 * change of those goes through core_conn_set_state() or core_close(), which take it out of the
 * index and put it back, so the counts can never drift from a walk of the list. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core_internal.h"

struct core_req_note {
	struct core_req_note *next;
	char rid[CORE_UUID_LEN + 1];
};

/* What one client address holds. Pre-auth sockets are counted in two pools, local and other
 * connections of the address ([LIMIT-4]), each a list oldest first. requests counts notes of
 * pending requests created from the address; a note outlives its request until a prune. */
struct core_ip_count {
	struct core_ip_count *next;
	unsigned preauth[2]; /* [0] remote, [1] local */
	struct core_conn *pre_head[2], *pre_tail[2];
	unsigned held;
	unsigned requests;
	struct core_req_note *notes;
	char ip[CORE_IP_MAX];
};

/* The address key of requests created from a loopback client: their records carry no remoteIp
 * (§8.2). Not an address, so it cannot meet a real one. */
#define LOOPBACK_KEY "loopback"

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

static struct core_ip_count *ip_find(struct core *core, const char *ip)
{
	return *ip_slot(core, ip);
}

/* NULL when out of memory: the limit for this address then goes uncounted, nothing worse. */
static struct core_ip_count *ip_get(struct core *core, const char *ip)
{
	struct core_ip_count **p = ip_slot(core, ip), *e = *p;

	if (e)
		return e;
	e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	snprintf(e->ip, sizeof(e->ip), "%s", ip);
	*p = e;
	return e;
}

/* Frees e once it counts nothing. */
static void ip_release(struct core *core, struct core_ip_count *e)
{
	struct core_ip_count **p;

	if (e->preauth[0] || e->preauth[1] || e->held || e->requests)
		return;
	p = ip_slot(core, e->ip);
	*p = e->next;
	free(e);
}

static void held_add(struct core *core, const char *ip, int dir)
{
	struct core_ip_count *e = dir > 0 ? ip_get(core, ip) : ip_find(core, ip);

	if (!e || (dir < 0 && !e->held))
		return;
	e->held = (unsigned)((int)e->held + dir);
	ip_release(core, e);
}

static bool pre_listed(const struct core_ip_count *e, const struct core_conn *c, int pool)
{
	return c->pre_prev || e->pre_head[pool] == c;
}

static void preauth_add(struct core *core, struct core_conn *c)
{
	struct core_ip_count *e = ip_get(core, c->ip);
	int pool = c->local;

	if (!e)
		return;
	c->pre_next = NULL;
	c->pre_prev = e->pre_tail[pool];
	if (e->pre_tail[pool])
		e->pre_tail[pool]->pre_next = c;
	else
		e->pre_head[pool] = c;
	e->pre_tail[pool] = c;
	e->preauth[pool]++;
}

static void preauth_remove(struct core *core, struct core_conn *c)
{
	struct core_ip_count *e = ip_find(core, c->ip);
	int pool = c->local;

	if (!e || !pre_listed(e, c, pool))
		return;
	if (c->pre_prev)
		c->pre_prev->pre_next = c->pre_next;
	else
		e->pre_head[pool] = c->pre_next;
	if (c->pre_next)
		c->pre_next->pre_prev = c->pre_prev;
	else
		e->pre_tail[pool] = c->pre_prev;
	c->pre_prev = c->pre_next = NULL;
	e->preauth[pool]--;
	ip_release(core, e);
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
		if (dir > 0)
			preauth_add(core, c);
		else
			preauth_remove(core, c);
	} else if (c->state == CONN_HELD) {
		struct core_conn **p = &core->held[hash_str(c->request_id) % CORE_INDEX_BUCKETS];

		held_add(core, c->ip, dir);
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
	struct core_ip_count *e = ip_find(core, ip);

	return e ? e->preauth[0] + e->preauth[1] : 0;
}

unsigned core_count_held(struct core *core, const char *ip, const struct core_conn *except)
{
	unsigned n;
	bool except_counted = except && !except->closing && except->state == CONN_HELD &&
	                      (!ip || strcmp(except->ip, ip) == 0);

	if (ip) {
		struct core_ip_count *e = ip_find(core, ip);

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

/* --- pending requests per client address ([LIMIT-2]) --- */

static const char *request_key(const cJSON *rec)
{
	const char *ip = json_get_string(rec, "remoteIp");

	return ip && ip[0] ? ip : LOOPBACK_KEY;
}

static const char *conn_key(const struct core_conn *c)
{
	return c->client_loopback || !c->ip[0] ? LOOPBACK_KEY : c->ip;
}

/* Drops the notes of e whose request left the store. */
static void prune_notes(struct core *core, struct core_ip_count *e)
{
	struct core_req_note **p = &e->notes;

	while (*p) {
		struct core_req_note *n = *p;
		const cJSON *rec = store_get(core->store, STORE_PENDING, n->rid);

		if (rec && strcmp(request_key(rec), e->ip) == 0) {
			p = &n->next;
			continue;
		}
		*p = n->next;
		free(n);
		e->requests--;
		core->n_request_notes--;
	}
}

static void prune_all_notes(struct core *core)
{
	for (size_t i = 0; i < CORE_INDEX_BUCKETS; i++) {
		struct core_ip_count *e = core->ip_counts[i], *next;

		for (; e; e = next) {
			next = e->next;
			prune_notes(core, e);
			ip_release(core, e);
		}
	}
}

void core_index_note_request(struct core *core, const cJSON *rec)
{
	const char *rid = json_get_string(rec, "requestId");
	struct core_ip_count *e;
	struct core_req_note *n;

	if (!rid || !(e = ip_get(core, request_key(rec))))
		return;
	n = calloc(1, sizeof(*n));
	if (!n) {
		ip_release(core, e);
		return;
	}
	snprintf(n->rid, sizeof(n->rid), "%s", rid);
	n->next = e->notes;
	e->notes = n;
	e->requests++;
	/* Resolved requests leave their notes behind; sweeping them once the notes are twice the
	 * store keeps the notes O(requests) at O(1) amortized cost per request. */
	if (++core->n_request_notes > 2 * store_count(core->store, STORE_PENDING) + 256)
		prune_all_notes(core);
}

void core_index_note_stored_requests(struct core *core)
{
	size_t n = store_count(core->store, STORE_PENDING);

	for (size_t i = 0; i < n; i++)
		core_index_note_request(core, store_at(core->store, STORE_PENDING, i));
}

/* Pending requests created from key: exact once it matters, i.e. at the cap. */
static unsigned requests_from(struct core *core, const char *key)
{
	struct core_ip_count *e = ip_find(core, key);
	unsigned n;

	if (!e)
		return 0;
	if (e->requests >= core->cfg.max_pending_per_ip)
		prune_notes(core, e);
	n = e->requests;
	ip_release(core, e);
	return n;
}

enum cp_err core_limit_pending(struct core *core, const struct core_conn *conn,
                               const cJSON *existing, const struct core_conn *holder)
{
	/* A refresh creates no request; a new one is refused, never room made for it
	 * ([LIMIT-3]'s why). */
	if (!existing && requests_from(core, conn_key(conn)) >= core->cfg.max_pending_per_ip)
		return CP_ERR_PENDING_LIMIT_IP;
	if (core_count_held(core, conn->ip, holder) >= core->cfg.max_pending_per_ip)
		return CP_ERR_PENDING_LIMIT_IP;
	if (!existing && store_count(core->store, STORE_PENDING) >= core->cfg.max_pending)
		return CP_ERR_PENDING_LIMIT_TOTAL;
	if (core_count_held(core, NULL, holder) >= core->cfg.max_pending)
		return CP_ERR_PENDING_LIMIT_TOTAL;
	return CP_OK;
}

/* --- pre-auth sockets per client address ([LIMIT-4]) --- */

#define EVICT_LOG_EVERY_MS 10000

void core_limit_preauth(struct core *core, struct core_conn *conn, uint64_t now_ms)
{
	struct core_ip_count *e = ip_find(core, conn->ip);
	const struct cp_err_info *info = cp_err_info(CP_ERR_PREAUTH_LIMIT_IP);
	int pool = conn->local;
	struct core_conn *victim;

	/* Local connections come from this machine's own processes, the operator's tools among
	 * them: counted apart and not capped per address, so that no churn of sockets on the same
	 * address can close the operator's; the gateway's total bounds them ([LIMIT-6]). */
	if (!e || pool || e->preauth[pool] <= core->cfg.max_preauth_per_ip)
		return;
	/* The oldest goes: a socket that has not sent connect by now is the least likely to, and
	 * idle sockets must never keep a newer client out. */
	victim = e->pre_head[pool];
	if (!victim || victim == conn)
		return;
	core_logf(core, CORE_LOG_DEBUG,
	          "conn %s ip %s: closed for a newer connection (%u pre-auth)", victim->id,
	          victim->ip, e->preauth[pool]);
	core_close(core, victim, info->close_code, info->close_reason);
	/* One line per eviction would let a flood fill the log. */
	core->evicted_unlogged++;
	if (now_ms >= core->evict_log_ms + EVICT_LOG_EVERY_MS) {
		core_logf(core, CORE_LOG_WARN,
		          "%s: closed %u pre-auth socket(s) for newer ones (last: ip %s, %s)",
		          info->details_code, core->evicted_unlogged, conn->ip,
		          pool ? "local" : "remote");
		core->evicted_unlogged = 0;
		core->evict_log_ms = now_ms;
	}
}

void core_index_free(struct core *core)
{
	for (size_t i = 0; i < CORE_INDEX_BUCKETS; i++) {
		while (core->ip_counts[i]) {
			struct core_ip_count *e = core->ip_counts[i];

			core->ip_counts[i] = e->next;
			while (e->notes) {
				struct core_req_note *n = e->notes;

				e->notes = n->next;
				free(n);
			}
			free(e);
		}
		core->held[i] = NULL;
	}
	core->ops = NULL;
	core->n_held = 0;
	core->n_request_notes = 0;
}

/* Every pre-auth socket is in its address's list of its pool, the counts match the lists. */
static bool preauth_consistent(struct core *core, const struct core_conn *c)
{
	struct core_ip_count *e = ip_find(core, c->ip);
	unsigned n = 0, listed = 0;
	bool found = false;

	if (!e)
		return false;
	for (struct core_conn *d = core->conns; d; d = d->next)
		if (!d->closing && d->state == CONN_PREAUTH && d->local == c->local &&
		    !strcmp(d->ip, c->ip))
			n++;
	for (struct core_conn *d = e->pre_head[c->local]; d; d = d->pre_next) {
		listed++;
		found = found || d == c;
	}
	return found && n == listed && n == e->preauth[c->local];
}

/* After a prune, every note names a pending request of its address, once, and the counts match
 * the notes. (A request written to the store behind the core's back has no note.) */
static bool requests_consistent(struct core *core)
{
	size_t total = 0;

	prune_all_notes(core);
	for (size_t i = 0; i < CORE_INDEX_BUCKETS; i++)
		for (struct core_ip_count *e = core->ip_counts[i]; e; e = e->next) {
			unsigned n = 0;

			for (struct core_req_note *r = e->notes; r; r = r->next, n++) {
				const cJSON *rec = store_get(core->store, STORE_PENDING, r->rid);

				if (!rec || strcmp(request_key(rec), e->ip) != 0)
					return false;
				for (struct core_req_note *q = r->next; q; q = q->next)
					if (!strcmp(q->rid, r->rid))
						return false;
			}
			if (n != e->requests)
				return false;
			total += n;
		}
	return total == core->n_request_notes && total <= store_count(core->store, STORE_PENDING);
}

bool core_index_consistent(struct core *core)
{
	unsigned held = 0, ops = 0, listed_ops = 0;

	for (struct core_conn *c = core->conns; c; c = c->next) {
		if (c->closing)
			continue;
		if (c->state == CONN_PREAUTH) {
			if (!preauth_consistent(core, c))
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
	return held == core->n_held && ops == listed_ops &&
	       (core->cfg.compat_6836 || requests_consistent(core));
}

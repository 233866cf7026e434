/* locality.c: the client address and locality of a connection (spec §8.10). */
#include "locality.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

static const uint8_t v4_mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

bool locality_addr_parse(const char *text, size_t len, struct locality_addr *out)
{
	char buf[LOCALITY_ADDR_MAX];
	uint8_t b6[16];

	if (!text)
		return false;
	while (len && is_blank(*text)) {
		text++;
		len--;
	}
	while (len && is_blank(text[len - 1]))
		len--;
	if (len >= 2 && text[0] == '[' && text[len - 1] == ']') {
		text++;
		len -= 2;
		if (!memchr(text, ':', len))
			return false; /* brackets are for IPv6 only */
	}
	if (len == 0 || len >= sizeof(buf) || memchr(text, '\0', len))
		return false;
	memcpy(buf, text, len);
	buf[len] = '\0';
	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET, buf, out->bytes) == 1) {
		out->family = AF_INET;
		return true;
	}
	if (inet_pton(AF_INET6, buf, b6) != 1)
		return false;
	if (memcmp(b6, v4_mapped_prefix, sizeof(v4_mapped_prefix)) == 0) {
		out->family = AF_INET;
		memcpy(out->bytes, b6 + 12, 4);
	} else {
		out->family = AF_INET6;
		memcpy(out->bytes, b6, 16);
	}
	return true;
}

bool locality_addr_is_loopback(const struct locality_addr *a)
{
	static const uint8_t v6_loopback[16] = {[15] = 1};

	if (a->family == AF_INET)
		return a->bytes[0] == 127;
	return a->family == AF_INET6 && memcmp(a->bytes, v6_loopback, 16) == 0;
}

bool locality_addr_equal(const struct locality_addr *a, const struct locality_addr *b)
{
	size_t n = a->family == AF_INET ? 4 : 16;

	return a->family == b->family && memcmp(a->bytes, b->bytes, n) == 0;
}

void locality_addr_format(const struct locality_addr *a, char *out, size_t outsz)
{
	if (!inet_ntop(a->family, a->bytes, out, (socklen_t)outsz) && outsz)
		out[0] = '\0';
}

static bool is_trusted(const struct locality_addr *a, const struct locality_addr *trusted,
                       size_t n_trusted)
{
	for (size_t i = 0; i < n_trusted; i++)
		if (locality_addr_equal(a, &trusted[i]))
			return true;
	return false;
}

static void set(struct locality_result *out, const char *client, bool local, const char *why)
{
	snprintf(out->client, sizeof(out->client), "%s", client ? client : "");
	out->local = local;
	out->why = why;
}

static void set_addr(struct locality_result *out, const struct locality_addr *a, const char *why)
{
	locality_addr_format(a, out->client, sizeof(out->client));
	out->local = locality_addr_is_loopback(a);
	out->why = why;
}

/* X-Forwarded-For from a trusted proxy: each hop appends the address it received the request
 * from, so only the entries to the right were written by proxies we trust; the client is the
 * rightmost entry that is not one of them. Everything to its left was written by the client. */
static void from_xff(const char *xff, const char *peer, const struct locality_addr *trusted,
                     size_t n_trusted, struct locality_result *out)
{
	const char *end = xff + strlen(xff);
	struct locality_addr a, leftmost;
	bool any = false;

	while (end > xff) {
		const char *start = end;

		while (start > xff && start[-1] != ',')
			start--;
		if (!locality_addr_parse(start, (size_t)(end - start), &a)) {
			set(out, peer, false, "X-Forwarded-For entry is not an address");
			return;
		}
		if (!is_trusted(&a, trusted, n_trusted)) {
			set_addr(out, &a, "rightmost untrusted X-Forwarded-For entry");
			return;
		}
		leftmost = a;
		any = true;
		end = start > xff ? start - 1 : xff;
	}
	if (!any) {
		set(out, peer, false, "empty X-Forwarded-For");
		return;
	}
	set_addr(out, &leftmost, "X-Forwarded-For holds trusted proxies only");
}

static void from_real_ip(const char *v, const char *peer, struct locality_result *out)
{
	struct locality_addr a;

	/* Repeated lines arrive joined with ','; a proxy writes exactly one address. */
	if (strchr(v, ',') || !locality_addr_parse(v, strlen(v), &a)) {
		set(out, peer, false, "X-Real-IP is not exactly one address");
		return;
	}
	set_addr(out, &a, "X-Real-IP from a trusted proxy");
}

void locality_resolve(const char *peer, const struct locality_headers *h,
                      const struct locality_addr *trusted, size_t n_trusted,
                      struct locality_result *out)
{
	static const struct locality_headers none;
	struct locality_addr pa;
	char pt[LOCALITY_ADDR_MAX];

	if (!h)
		h = &none;
	if (!peer || !locality_addr_parse(peer, strlen(peer), &pa)) {
		set(out, peer, false, "peer address unknown");
		return;
	}
	locality_addr_format(&pa, pt, sizeof(pt));
	if (is_trusted(&pa, trusted, n_trusted)) {
		if (h->x_forwarded_for)
			from_xff(h->x_forwarded_for, pt, trusted, n_trusted, out);
		else if (h->x_real_ip)
			from_real_ip(h->x_real_ip, pt, out);
		else if (h->x_forwarded_host)
			set(out, pt, false, "X-Forwarded-Host without a client address");
		else
			set_addr(out, &pa, "trusted proxy peer without forwarding headers");
	} else if (h->x_forwarded_for || h->x_real_ip || h->x_forwarded_host) {
		/* Proxy headers from a peer nobody vouches for: the real client is unknown. */
		set(out, pt, false, "proxy headers from an untrusted peer");
		return;
	} else {
		set_addr(out, &pa, "socket peer");
	}
	if (out->local && h->forwarded) {
		out->local = false;
		out->why = "Forwarded header";
	} else if (out->local && h->origin) {
		out->local = false;
		out->why = "Origin header (a browser)";
	}
}

static bool too_long(const char *v)
{
	return v && strnlen(v, LOCALITY_HEADER_MAX + 1) > LOCALITY_HEADER_MAX;
}

bool locality_headers_oversize(const struct locality_headers *h)
{
	return h && (too_long(h->x_forwarded_for) || too_long(h->x_real_ip) ||
	             too_long(h->forwarded) || too_long(h->x_forwarded_host));
}

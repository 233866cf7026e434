/* locality.h: who the client of a connection is and whether it is local (spec §8.10): addresses
 * parsed with inet_pton, proxy headers read right to left, never string prefixes. I/O-free. */
#ifndef CLAWPAIR_LOCALITY_H
#define CLAWPAIR_LOCALITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest proxy header value a gateway accepts (spec §8.10, LOCAL-4); a longer one refuses the
 * upgrade with HTTP 431. */
#define LOCALITY_HEADER_MAX 2048
/* Room for a printed address: the longest IPv6 text form and a NUL. */
#define LOCALITY_ADDR_MAX 64

/* An IPv4 or IPv6 address; an IPv4-mapped IPv6 address is kept as the IPv4 address. */
struct locality_addr {
	int family; /* AF_INET or AF_INET6 */
	uint8_t bytes[16]; /* 4 used for AF_INET */
};

/* Parses an address: "a.b.c.d", an IPv6 text form, "[v6]", an IPv4-mapped "::ffff:a.b.c.d"
 * (becomes IPv4). Leading and trailing blanks are ignored; nothing else is (no ports, no
 * prefixes, no host names). Returns true on success. */
bool locality_addr_parse(const char *text, size_t len, struct locality_addr *out);
bool locality_addr_is_loopback(const struct locality_addr *a); /* 127.0.0.0/8 or ::1 */
bool locality_addr_equal(const struct locality_addr *a, const struct locality_addr *b);
/* Canonical text (inet_ntop) into out (LOCALITY_ADDR_MAX bytes). */
void locality_addr_format(const struct locality_addr *a, char *out, size_t outsz);

/* The proxy-related request headers as the HTTP layer combined them: every line of a header,
 * in order, joined with ','. NULL: the header is absent (an empty string: present and empty). */
struct locality_headers {
	const char *x_forwarded_for;
	const char *x_real_ip;
	const char *forwarded; /* RFC 7239 */
	const char *x_forwarded_host;
	const char *origin;
};

struct locality_result {
	char client[LOCALITY_ADDR_MAX]; /* the client address (canonical text) */
	bool local;
	const char *why; /* static text: how the address and locality were decided (for logs) */
};

/* Decides the client address and locality of a connection from socket peer `peer` (text) with
 * headers h, given the trusted proxies (already parsed). Never fails: anything it cannot read is
 * remote. */
void locality_resolve(const char *peer, const struct locality_headers *h,
                      const struct locality_addr *trusted, size_t n_trusted,
                      struct locality_result *out);

/* True when any proxy header in h is longer than LOCALITY_HEADER_MAX bytes. */
bool locality_headers_oversize(const struct locality_headers *h);

#endif

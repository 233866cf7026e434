/* test_locality.c: unit tests of server/locality.c: address parsing, loopback, proxy headers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "locality.h"

struct proxies {
	struct locality_addr a[4];
	size_t n;
};

static struct proxies trust(const char *a, const char *b)
{
	struct proxies p = {0};

	if (a)
		assert_true(locality_addr_parse(a, strlen(a), &p.a[p.n++]));
	if (b)
		assert_true(locality_addr_parse(b, strlen(b), &p.a[p.n++]));
	return p;
}

static void expect(const char *peer, const struct locality_headers *h, const struct proxies *p,
                   const char *client, bool local)
{
	struct locality_result r;

	locality_resolve(peer, h, p ? p->a : NULL, p ? p->n : 0, &r);
	assert_string_equal(r.client, client);
	assert_int_equal(r.local, local);
	assert_non_null(r.why);
}

static void test_parse(void **state)
{
	struct locality_addr a;
	static const char *const good[] = {"127.0.0.1", " 10.0.0.1 ",       "::1",        "[::1]",
	                                   "fe80::1",   "::ffff:127.0.0.1", "2001:db8::7"};
	static const char *const bad[] = {
	        "",       "127.0.0.1.evil.com", "127.1",    "localhost", "1.2.3.4:80", "[1.2.3.4]",
	        "::1%lo", "1.2.3.4 5",          "01.2.3.4", "[::1",      "256.0.0.1"};
	(void)state;

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_true(locality_addr_parse(good[i], strlen(good[i]), &a));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_false(locality_addr_parse(bad[i], strlen(bad[i]), &a));
	assert_false(locality_addr_parse("1.2.3.4\0x", 9, &a));
}

static void test_loopback(void **state)
{
	struct locality_addr a;
	static const char *const lo[] = {"127.0.0.1", "127.255.1.2", "::1", "::ffff:127.0.0.9",
	                                 "0:0:0:0:0:0:0:1"};
	static const char *const not_lo[] = {"128.0.0.1",       "10.77.0.2",   "::2",
	                                     "::ffff:10.0.0.1", "::127.0.0.1", "fe80::1"};
	(void)state;

	for (size_t i = 0; i < sizeof(lo) / sizeof(lo[0]); i++) {
		assert_true(locality_addr_parse(lo[i], strlen(lo[i]), &a));
		assert_true(locality_addr_is_loopback(&a));
	}
	for (size_t i = 0; i < sizeof(not_lo) / sizeof(not_lo[0]); i++) {
		assert_true(locality_addr_parse(not_lo[i], strlen(not_lo[i]), &a));
		assert_false(locality_addr_is_loopback(&a));
	}
}

static void test_untrusted_peer(void **state)
{
	struct locality_headers h = {0};
	(void)state;

	expect("127.0.0.1", &h, NULL, "127.0.0.1", true);
	expect("::ffff:127.0.0.1", &h, NULL, "127.0.0.1", true);
	expect("10.77.0.2", &h, NULL, "10.77.0.2", false);
	h.x_real_ip = "203.0.113.9";
	expect("127.0.0.1", &h, NULL, "127.0.0.1", false);
	h.x_real_ip = NULL;
	h.x_forwarded_for = "";
	expect("127.0.0.1", &h, NULL, "127.0.0.1", false);
	h.x_forwarded_for = NULL;
	h.x_forwarded_host = "example.com";
	expect("127.0.0.1", &h, NULL, "127.0.0.1", false);
	h.x_forwarded_host = NULL;
	h.forwarded = "for=127.0.0.1";
	expect("127.0.0.1", &h, NULL, "127.0.0.1", false);
	h.forwarded = NULL;
	h.origin = "http://127.0.0.1:18789";
	expect("127.0.0.1", &h, NULL, "127.0.0.1", false);
	expect("garbage", NULL, NULL, "garbage", false);
}

static void test_trusted_xff(void **state)
{
	struct proxies p = trust("127.0.0.1", "10.0.0.5");
	struct locality_headers h = {0};
	(void)state;

	h.x_forwarded_for = "192.168.1.50";
	expect("127.0.0.1", &h, &p, "192.168.1.50", false);
	/* an appending proxy: the client wrote the left part */
	h.x_forwarded_for = "127.0.0.1, 192.168.1.50";
	expect("127.0.0.1", &h, &p, "192.168.1.50", false);
	/* two header lines, joined by the HTTP layer */
	h.x_forwarded_for = "127.0.0.1,192.168.1.50";
	expect("::ffff:127.0.0.1", &h, &p, "192.168.1.50", false);
	/* a chain of trusted hops ends at the client */
	h.x_forwarded_for = "192.168.1.50, 10.0.0.5";
	expect("127.0.0.1", &h, &p, "192.168.1.50", false);
	h.x_forwarded_for = "127.0.0.1";
	expect("127.0.0.1", &h, &p, "127.0.0.1", true);
	h.x_forwarded_for = "::1";
	expect("127.0.0.1", &h, &p, "::1", true);
	h.x_forwarded_for = "127.0.0.1.evil.com";
	expect("127.0.0.1", &h, &p, "127.0.0.1", false);
	h.x_forwarded_for = "192.168.1.50, junk";
	expect("127.0.0.1", &h, &p, "127.0.0.1", false);
	h.x_forwarded_for = " , ";
	expect("127.0.0.1", &h, &p, "127.0.0.1", false);
	h.x_forwarded_for = "";
	expect("127.0.0.1", &h, &p, "127.0.0.1", false);
	/* X-Forwarded-For wins over X-Real-IP */
	h.x_forwarded_for = "192.168.1.50";
	h.x_real_ip = "127.0.0.1";
	expect("127.0.0.1", &h, &p, "192.168.1.50", false);
}

static void test_trusted_real_ip(void **state)
{
	struct proxies p = trust("127.0.0.1", NULL);
	struct locality_headers h = {0};
	(void)state;

	h.x_real_ip = "203.0.113.9";
	expect("127.0.0.1", &h, &p, "203.0.113.9", false);
	h.x_real_ip = "127.0.0.1";
	expect("127.0.0.1", &h, &p, "127.0.0.1", true);
	h.x_real_ip = "127.0.0.1,203.0.113.9";
	expect("127.0.0.1", &h, &p, "127.0.0.1", false);
	h.x_real_ip = "localhost";
	expect("127.0.0.1", &h, &p, "127.0.0.1", false);
	/* no forwarding header: the proxy's machine itself */
	memset(&h, 0, sizeof(h));
	expect("127.0.0.1", &h, &p, "127.0.0.1", true);
	h.forwarded = "for=127.0.0.1";
	expect("127.0.0.1", &h, &p, "127.0.0.1", false);
	/* forwarding a request without saying for whom */
	h.forwarded = NULL;
	h.x_forwarded_host = "gw.example";
	expect("127.0.0.1", &h, &p, "127.0.0.1", false);
}

static void test_oversize(void **state)
{
	struct locality_headers h = {0};
	char *big = malloc(LOCALITY_HEADER_MAX + 2);
	(void)state;

	assert_non_null(big);
	memset(big, '1', LOCALITY_HEADER_MAX + 1);
	big[LOCALITY_HEADER_MAX + 1] = '\0';
	assert_false(locality_headers_oversize(&h));
	assert_false(locality_headers_oversize(NULL));
	h.x_real_ip = big;
	assert_true(locality_headers_oversize(&h));
	big[LOCALITY_HEADER_MAX] = '\0';
	assert_false(locality_headers_oversize(&h));
	h.x_real_ip = NULL;
	big[LOCALITY_HEADER_MAX] = '1';
	h.forwarded = big;
	assert_true(locality_headers_oversize(&h));
	free(big);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_parse),           cmocka_unit_test(test_loopback),
	        cmocka_unit_test(test_untrusted_peer),  cmocka_unit_test(test_trusted_xff),
	        cmocka_unit_test(test_trusted_real_ip), cmocka_unit_test(test_oversize),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

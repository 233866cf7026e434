/* client_test.c: the WebSocket client library (client_lws.c) against wsfixture.py over loopback. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "client.h"
#include "clock.h"
#include "spawn.h"

static int tmo(int ms)
{
	return under_valgrind() ? ms * 10 : ms;
}

static int start_fixture(const char *mode, struct spawned *s)
{
	char *argv[] = {"/usr/bin/python3", (char *)source_path("tests/kit/wsfixture.py"), "--mode",
	                (char *)mode, NULL};

	return spawn_server(argv, 10000, s);
}

struct env {
	struct spawned srv;
	struct client_ctx *ctx;
};

static int setup_echo(void **state)
{
	struct env *e = calloc(1, sizeof(*e));

	if (!e || start_fixture("echo", &e->srv) < 0)
		return -1;
	e->ctx = client_ctx_create(&(struct client_ctx_opts){.max_conns = 300});
	if (!e->ctx)
		return -1;
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;

	client_ctx_destroy(e->ctx);
	spawn_stop(&e->srv, 2000);
	free(e);
	return 0;
}

static struct client_conn *open_conn(struct env *e, const struct client_conn_opts *extra)
{
	struct client_conn_opts o = extra ? *extra : (struct client_conn_opts){0};
	struct client_conn *c = NULL;
	char err[256];

	o.url = e->srv.url;
	if (client_connect(e->ctx, &o, &c, err, sizeof(err)) < 0)
		fail_msg("connect: %s", err);
	return c;
}

static void expect_text(struct client_conn *c, const char *want, size_t len)
{
	struct client_item it;

	assert_int_equal(client_next(c, tmo(3000), &it), 1);
	assert_int_equal(it.kind, CLIENT_ITEM_TEXT);
	assert_int_equal(it.len, len);
	assert_memory_equal(it.text, want, len);
	assert_int_equal(it.text[len], '\0');
	client_item_finish(&it);
}

static void test_echo_text(void **state)
{
	struct env *e = *state;
	struct client_conn *c = open_conn(e, NULL);

	assert_true(client_is_open(c));
	assert_non_null(strstr(client_local_address(c), "127.0.0.1:"));
	assert_true(client_connected_at_ms(c) > 0);
	assert_int_equal(client_http_status(c), 101);
	assert_int_equal(client_send_text(c, "{\"type\":\"req\"}"), 0);
	assert_int_equal(client_send_text(c, "second"), 0);
	expect_text(c, "{\"type\":\"req\"}", 14);
	expect_text(c, "second", 6);
	client_conn_destroy(c);
}

static void test_large_frames_both_ways(void **state)
{
	struct env *e = *state;
	struct client_conn *c = open_conn(e, NULL);
	size_t n = 3 * 1024 * 1024 + 17;
	char *big = malloc(n);
	struct client_item it;

	assert_non_null(big);
	for (size_t i = 0; i < n; i++)
		big[i] = (char)('a' + i % 26);
	assert_int_equal(client_send(c, big, n, false), 0);
	expect_text(c, big, n);
	free(big);

	assert_int_equal(client_send_text(c, "big:1000000"), 0);
	assert_int_equal(client_next(c, tmo(5000), &it), 1);
	assert_int_equal(it.kind, CLIENT_ITEM_TEXT);
	assert_int_equal(it.len, 1000000);
	assert_int_equal(it.text[999999], 'y');
	client_item_finish(&it);
	client_conn_destroy(c);
}

static void test_fragments_reassembled(void **state)
{
	struct env *e = *state;
	struct client_conn *c = open_conn(e, NULL);

	assert_int_equal(client_send_text(c, "frag:5:{\"hello\":\"fragmented world\"}"), 0);
	expect_text(c, "{\"hello\":\"fragmented world\"}", 28);
	client_conn_destroy(c);
}

static void test_binary(void **state)
{
	struct env *e = *state;
	struct client_conn *c = open_conn(e, NULL);
	struct client_item it;
	const unsigned char bin[] = {0, 1, 2, 0xff};

	assert_int_equal(client_send(c, bin, sizeof(bin), true), 0);
	assert_int_equal(client_next(c, tmo(3000), &it), 1);
	assert_true(it.binary);
	assert_int_equal(it.len, 4);
	assert_memory_equal(it.text, bin, 4);
	client_item_finish(&it);
	assert_int_equal(client_send_text(c, "binary:xyz"), 0);
	assert_int_equal(client_next(c, tmo(3000), &it), 1);
	assert_true(it.binary);
	client_item_finish(&it);
	client_conn_destroy(c);
}

static void test_headers(void **state)
{
	struct env *e = *state;
	struct client_conn *c;
	struct client_item it;

	c = open_conn(e, &(struct client_conn_opts){.xff = "10.77.0.9",
	                                            .host_header = "gateway.example:18789",
	                                            .origin = "https://ui.example"});
	assert_int_equal(client_send_text(c, "headers"), 0);
	assert_int_equal(client_next(c, tmo(3000), &it), 1);
	assert_non_null(strstr(it.text, "\"x-forwarded-for\": \"10.77.0.9\""));
	assert_non_null(strstr(it.text, "\"host\": \"gateway.example:18789\""));
	assert_non_null(strstr(it.text, "\"origin\": \"https://ui.example\""));
	assert_null(strstr(it.text, "sec-websocket-protocol"));
	client_item_finish(&it);
	client_conn_destroy(c);

	/* by default: Host is the URL's authority, no Origin, no proxy header */
	c = open_conn(e, NULL);
	assert_int_equal(client_send_text(c, "headers"), 0);
	assert_int_equal(client_next(c, tmo(3000), &it), 1);
	assert_non_null(strstr(it.text, e->srv.url + 5));
	assert_null(strstr(it.text, "origin"));
	assert_null(strstr(it.text, "x-forwarded-for"));
	client_item_finish(&it);
	client_conn_destroy(c);
}

static void test_peer_close_code(void **state)
{
	struct env *e = *state;
	struct client_conn *c = open_conn(e, NULL);
	struct client_item it;

	assert_int_equal(client_send_text(c, "close:4403:pairing rejected"), 0);
	assert_int_equal(client_next(c, tmo(3000), &it), 1);
	assert_int_equal(it.kind, CLIENT_ITEM_CLOSE);
	assert_int_equal(it.close_code, 4403);
	assert_string_equal(it.close_reason, "pairing rejected");
	assert_false(it.local_close);
	assert_false(client_is_open(c));
	assert_int_equal(client_send_text(c, "x"), -1);
	assert_int_equal(client_next(c, 100, &it), 0);
	client_conn_destroy(c);
}

static void test_local_close(void **state)
{
	struct env *e = *state;
	struct client_conn *c = open_conn(e, NULL);
	struct client_item it;

	assert_int_equal(client_send_text(c, "last words"), 0);
	client_close(c, 4000, "bye");
	assert_false(client_is_open(c));
	assert_int_equal(client_send_text(c, "too late"), -1);
	/* the queued frame goes out before the close; its echo may be dropped after our close */
	do {
		assert_int_equal(client_next(c, tmo(3000), &it), 1);
		if (it.kind == CLIENT_ITEM_TEXT)
			assert_string_equal(it.text, "last words");
		client_item_finish(&it);
	} while (it.kind == CLIENT_ITEM_TEXT);
	assert_int_equal(it.kind, CLIENT_ITEM_CLOSE);
	/* the fixture echoes our close frame */
	assert_int_equal(it.close_code, 4000);
	client_conn_destroy(c);
}

static void test_drop_without_close_frame(void **state)
{
	struct env *e = *state;
	struct client_conn *c = open_conn(e, NULL);
	struct client_item it;

	assert_int_equal(client_send_text(c, "drop"), 0);
	assert_int_equal(client_next(c, tmo(3000), &it), 1);
	assert_int_equal(it.kind, CLIENT_ITEM_CLOSE);
	assert_int_equal(it.close_code, 1006);
	assert_false(it.local_close);
	client_conn_destroy(c);

	c = open_conn(e, NULL);
	client_close(c, 0, NULL);
	assert_int_equal(client_next(c, tmo(3000), &it), 1);
	assert_int_equal(it.kind, CLIENT_ITEM_CLOSE);
	assert_true(it.local_close);
	client_conn_destroy(c);
}

static void test_frame_cap(void **state)
{
	struct env *e = *state;
	struct client_ctx *small = client_ctx_create(&(struct client_ctx_opts){.max_frame = 1000});
	struct client_conn *c = NULL;
	struct client_item it;
	char err[256];

	assert_non_null(small);
	assert_int_equal(client_connect(small, &(struct client_conn_opts){.url = e->srv.url}, &c,
	                                err, sizeof(err)),
	                 0);
	assert_int_equal(client_send_text(c, "big:999"), 0);
	assert_int_equal(client_next(c, tmo(3000), &it), 1);
	assert_int_equal(it.len, 999);
	client_item_finish(&it);
	assert_int_equal(client_send_text(c, "big:5000"), 0);
	assert_int_equal(client_next(c, tmo(3000), &it), 1);
	assert_int_equal(it.kind, CLIENT_ITEM_CLOSE);
	assert_int_equal(it.close_code, 1009);
	assert_true(it.local_close);
	client_conn_destroy(c);
	client_ctx_destroy(small);
}

static void test_many_async(void **state)
{
	struct env *e = *state;
	enum { N = 200 };
	struct client_conn *c[N];
	int open = 0, echoed = 0;
	uint64_t deadline = clock_mono_ms() + (uint64_t)tmo(15000);

	for (int i = 0; i < N; i++)
		assert_int_equal(client_connect_async(e->ctx,
		                                      &(struct client_conn_opts){.url = e->srv.url},
		                                      &c[i]),
		                 0);
	while (open < N && clock_mono_ms() < deadline) {
		client_service(e->ctx, 20);
		open = 0;
		for (int i = 0; i < N; i++)
			open += client_is_open(c[i]);
	}
	assert_int_equal(open, N);
	for (int i = 0; i < N; i++) {
		char msg[32];

		snprintf(msg, sizeof(msg), "n%d", i);
		assert_int_equal(client_send_text(c[i], msg), 0);
	}
	while (echoed < N && clock_mono_ms() < deadline) {
		client_service(e->ctx, 20);
		echoed = 0;
		for (int i = 0; i < N; i++)
			echoed += client_pending_items(c[i]) == 1;
	}
	assert_int_equal(echoed, N);
	for (int i = 0; i < N; i++)
		client_conn_destroy(c[i]);
}

static void expect_connect_failure(const char *mode, const char *needle, int max_ms)
{
	struct spawned srv;
	struct client_ctx *ctx = client_ctx_create(NULL);
	struct client_conn *c = NULL;
	char err[256] = "";
	uint64_t t0;

	assert_int_equal(start_fixture(mode, &srv), 0);
	t0 = clock_mono_ms();
	assert_int_equal(client_connect(ctx,
	                                &(struct client_conn_opts){.url = srv.url,
	                                                           .connect_timeout_ms = 1500},
	                                &c, err, sizeof(err)),
	                 -1);
	assert_null(c);
	assert_true(clock_mono_ms() - t0 < (uint64_t)tmo(max_ms));
	if (needle && !strstr(err, needle))
		fail_msg("error '%s' lacks '%s'", err, needle);
	client_ctx_destroy(ctx);
	spawn_stop(&srv, 2000);
}

static void test_refused_upgrade(void **state)
{
	(void)state;
	expect_connect_failure("refuse", "HTTP 403", 3000);
}

static void test_garbage_server(void **state)
{
	(void)state;
	expect_connect_failure("garbage", NULL, 3000);
}

static void test_silent_server(void **state)
{
	(void)state;
	expect_connect_failure("silent", "timeout", 3000);
}

static void test_bad_urls(void **state)
{
	struct client_ctx *ctx = client_ctx_create(NULL);
	struct client_conn *c = NULL;
	char err[256];
	(void)state;

	assert_int_equal(client_connect(ctx, &(struct client_conn_opts){.url = "wss://127.0.0.1:1"},
	                                &c, err, sizeof(err)),
	                 -1);
	assert_non_null(strstr(err, "wss://"));
	assert_int_equal(client_connect(ctx, &(struct client_conn_opts){.url = "http://x"}, &c, err,
	                                sizeof(err)),
	                 -1);
	assert_int_equal(client_connect(ctx, &(struct client_conn_opts){.url = "ws://:80"}, &c, err,
	                                sizeof(err)),
	                 -1);
	assert_int_equal(client_connect(ctx, &(struct client_conn_opts){.url = "ws://h:99999"}, &c,
	                                err, sizeof(err)),
	                 -1);
	assert_int_equal(client_connect(ctx,
	                                &(struct client_conn_opts){.url = "ws://127.0.0.1:1",
	                                                           .xff = "a\r\nX: y"},
	                                &c, err, sizeof(err)),
	                 -1);
	/* nothing listens on port 1: refused quickly, not a hang */
	assert_int_equal(client_connect(ctx, &(struct client_conn_opts){.url = "ws://127.0.0.1:1"},
	                                &c, err, sizeof(err)),
	                 -1);
	client_ctx_destroy(ctx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_echo_text, setup_echo, teardown),
	        cmocka_unit_test_setup_teardown(test_large_frames_both_ways, setup_echo, teardown),
	        cmocka_unit_test_setup_teardown(test_fragments_reassembled, setup_echo, teardown),
	        cmocka_unit_test_setup_teardown(test_binary, setup_echo, teardown),
	        cmocka_unit_test_setup_teardown(test_headers, setup_echo, teardown),
	        cmocka_unit_test_setup_teardown(test_peer_close_code, setup_echo, teardown),
	        cmocka_unit_test_setup_teardown(test_local_close, setup_echo, teardown),
	        cmocka_unit_test_setup_teardown(test_drop_without_close_frame, setup_echo,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_frame_cap, setup_echo, teardown),
	        cmocka_unit_test_setup_teardown(test_many_async, setup_echo, teardown),
	        cmocka_unit_test(test_refused_upgrade),
	        cmocka_unit_test(test_garbage_server),
	        cmocka_unit_test(test_silent_server),
	        cmocka_unit_test(test_bad_urls),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

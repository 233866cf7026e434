/* liveness.c: a plain TCP connect to the gateway's address, the least a running gateway does,
 * so that a gateway that died is not judged case by case. */
#include "liveness.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* A restart or a busy gateway can refuse one connection; two in a row, this far apart, it
 * does not. */
#define RETRY_PAUSE_MS 300
/* A dying gateway may still complete a handshake from its backlog, then reset it when its
 * listening socket goes: a connection that lives this long was accepted. */
#define HOLD_MS 25

/* HOST and PORT of ws[s]://HOST[:PORT][/...] (a v6 HOST in brackets). */
static bool url_host_port(const char *url, char *host, size_t hostsz, char *port, size_t portsz)
{
	bool tls = strncasecmp(url, "wss://", 6) == 0;
	const char *p = url + (tls ? 6 : 5), *end, *colon;
	size_t n;

	if (!tls && strncasecmp(url, "ws://", 5) != 0)
		return false;
	end = p + strcspn(p, "/?#");
	if (*p == '[') {
		const char *rb = memchr(p, ']', (size_t)(end - p));

		if (!rb)
			return false;
		n = (size_t)(rb - p - 1);
		colon = rb + 1 < end && rb[1] == ':' ? rb + 1 : NULL;
		p++;
	} else {
		colon = memchr(p, ':', (size_t)(end - p));
		n = (size_t)((colon ? colon : end) - p);
	}
	if (n == 0 || n >= hostsz)
		return false;
	memcpy(host, p, n);
	host[n] = '\0';
	if (colon && (size_t)(end - colon - 1) > 0 && (size_t)(end - colon - 1) < portsz)
		snprintf(port, portsz, "%.*s", (int)(end - colon - 1), colon + 1);
	else
		snprintf(port, portsz, "%s", tls ? "443" : "80");
	return true;
}

static int connect_once(const struct addrinfo *ai, int timeout_ms)
{
	int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol), rc = -1;
	struct pollfd pfd;
	int soerr = 0;
	socklen_t len = sizeof soerr;

	if (fd < 0)
		return errno;
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0)
		goto out;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
		rc = 0;
		goto out;
	}
	if (errno != EINPROGRESS) {
		rc = errno;
		goto out;
	}
	pfd = (struct pollfd){.fd = fd, .events = POLLOUT};
	if (poll(&pfd, 1, timeout_ms) <= 0) {
		rc = ETIMEDOUT;
		goto out;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
		soerr = errno;
	rc = soerr;
	if (rc == 0) {
		/* a WebSocket server says nothing before the upgrade request: readable means
		 * closed or reset (unless it greets, which is alive too) */
		char c;

		pfd = (struct pollfd){.fd = fd, .events = POLLIN};
		if (poll(&pfd, 1, HOLD_MS) > 0) {
			ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);

			if (n == 0)
				rc = ECONNRESET;
			else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
				rc = errno;
		}
	}
out:
	close(fd);
	return rc;
}

bool conf_gateway_accepts(const char *url, int timeout_ms, char *err, size_t errsz)
{
	char host[256], port[16];
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
	int rc = ECONNREFUSED;

	if (!url || !url_host_port(url, host, sizeof host, port, sizeof port)) {
		snprintf(err, errsz, "not a ws:// or wss:// URL");
		return false;
	}
	for (int attempt = 0; attempt < 2; attempt++) {
		int gai;

		if (attempt) {
			struct timespec ts = {0, RETRY_PAUSE_MS * 1000000L};

			nanosleep(&ts, NULL);
		}
		gai = getaddrinfo(host, port, &hints, &res);
		if (gai != 0) {
			snprintf(err, errsz, "%s", gai_strerror(gai));
			continue;
		}
		for (const struct addrinfo *ai = res; ai; ai = ai->ai_next) {
			rc = connect_once(ai, timeout_ms);
			if (rc == 0)
				break;
		}
		freeaddrinfo(res);
		res = NULL;
		if (rc == 0)
			return true;
		snprintf(err, errsz, "%s", strerror(rc));
	}
	return false;
}

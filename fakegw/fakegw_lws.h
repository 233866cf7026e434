/* fakegw_lws.h: the libwebsockets server adapter of the scripted gateway: listens on one
 * address, hands each WebSocket to the attached fakegw, queues its frames and closes. */
#ifndef CLAWPAIR_FAKEGW_LWS_H
#define CLAWPAIR_FAKEGW_LWS_H

#include <stddef.h>
#include <stdint.h>

#include "fakegw.h"

struct fakegw_server;

/* Listens on host:port (port 0: a free one). Returns NULL with a reason in err. */
struct fakegw_server *fakegw_server_create(const char *host, int port, char *err, size_t errsz);
void fakegw_server_destroy(struct fakegw_server *s);
/* The port it listens on. */
int fakegw_server_port(const struct fakegw_server *s);
/* The fakegw_io to give fakegw_create for this server. */
const struct fakegw_io *fakegw_server_io(void);
/* New WebSockets go to gw (NULL: they are closed 1013 at once). Connections of the gateway
 * attached before are dropped from it: it may be destroyed after this call. */
void fakegw_server_attach(struct fakegw_server *s, struct fakegw *gw);
/* Runs the event loop for about wait_ms, polling the attached gateway's timers. Returns 0, or
 * -1 when the loop failed. */
int fakegw_server_service(struct fakegw_server *s, int wait_ms);

#endif

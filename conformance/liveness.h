/* liveness.h: whether the gateway still accepts a connection: what tells a gateway that failed
 * a case from one that went away during it. */
#ifndef CLAWPAIR_LIVENESS_H
#define CLAWPAIR_LIVENESS_H

#include <stdbool.h>
#include <stddef.h>

/* Opens (and closes) a TCP connection to the host and port of a ws:// or wss:// URL, within
 * timeout_ms, trying twice. Returns true when one was accepted; else false with the reason in
 * err ("connection refused"). */
bool conf_gateway_accepts(const char *url, int timeout_ms, char *err, size_t errsz);

#endif

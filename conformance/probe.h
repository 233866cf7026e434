/* probe.h: the runner's first connect to the gateway, before any case. */
#ifndef CLAWPAIR_PROBE_H
#define CLAWPAIR_PROBE_H

/* The exit status when the probe fails: the gateway refused the token (1, a refusal, as every
 * clawpair tool exits on one), or could not be used at all (2: unreachable, no challenge, a
 * refused TLS certificate). */
enum { CONF_PROBE_REFUSED = 1, CONF_PROBE_UNUSABLE = 2 };

/* A plain connect: WebSocket, challenge, and a device-less operator connect with the token;
 * then whether the runner is local to the gateway (*why_remote: NULL, or why not). Returns 0,
 * or an exit status after saying why on stderr. */
int conf_probe(const char *url, const char *tls_fingerprint, const char *token, double scale,
               const char **why_remote);

#endif

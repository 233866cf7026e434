/* client_mode.h: `clawpair-conformance client`: the runner plays the gateway and grades a
 * client (a node implementation) against the client requirements of spec §10. */
#ifndef CLAWPAIR_CLIENT_MODE_H
#define CLAWPAIR_CLIENT_MODE_H

/* argv[0] is "client". Returns the exit status (0 passed, 1 a failure, 2 usage or error). */
int client_mode_main(int argc, char **argv);

#endif

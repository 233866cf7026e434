/* tls.h: the gateway's TLS certificate: a self-signed one made once and kept in the state
 * directory, the check that a certificate and its key belong together, and the SHA-256
 * fingerprint that clients pin (spec §8.14). */
#ifndef CLAWPAIR_TLS_H
#define CLAWPAIR_TLS_H

#include <stdbool.h>
#include <stddef.h>

/* "sha256:" and 64 lowercase hex digits. */
#define TLS_FINGERPRINT_LEN 71

/* The files of a self-signed certificate under the state directory. */
#define TLS_SELF_SIGNED_DIR "tls"
#define TLS_SELF_SIGNED_CERT "cert.pem"
#define TLS_SELF_SIGNED_KEY "key.pem"

/* STATE_DIR/tls/cert.pem and key.pem: kept when both are there, else made anew (an EC P-256
 * key and a self-signed certificate for ten years, each file mode 0600, the directory 0700,
 * written atomically, the key first). cert_path and key_path get the paths; *created says
 * whether they were made now. Returns 0, or -1 with a one-line reason in err. */
int tls_self_signed(const char *state_dir, char *cert_path, size_t certsz, char *key_path,
                    size_t keysz, bool *created, char *err, size_t errsz);

/* Reads the first certificate of the PEM file cert_path and the private key of key_path, checks
 * that they belong together, and writes the certificate's fingerprint (SHA-256 over its DER
 * encoding) into fp. Returns 0, or -1 with a one-line reason in err. */
int tls_check(const char *cert_path, const char *key_path, char fp[TLS_FINGERPRINT_LEN + 1],
              char *err, size_t errsz);

#endif

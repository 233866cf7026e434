/* tls.c: the gateway's TLS certificate (tls.h) on OpenSSL's EVP, X509 and PEM APIs. */
#include "tls.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "fileio.h"

#define VALID_DAYS 3650
#define BACKDATE_S 3600 /* valid already for a client whose clock is a little behind */
#define COMMON_NAME "clawpair-gateway"

/* Formats the reason into err, with OpenSSL's last error when it left one. Returns -1. */
__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t errsz, const char *fmt, ...)
{
	unsigned long e = ERR_peek_last_error();
	const char *why = e ? ERR_reason_error_string(e) : NULL;
	va_list ap;
	size_t n;

	va_start(ap, fmt);
	vsnprintf(err, errsz, fmt, ap);
	va_end(ap);
	n = strlen(err);
	if (why && n < errsz)
		snprintf(err + n, errsz - n, " (%s)", why);
	ERR_clear_error();
	return -1;
}

static int add_ext(X509 *x, int nid, const char *value)
{
	X509V3_CTX v3;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx_nodb(&v3);
	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
	if (!ext)
		return -1;
	ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok ? 0 : -1;
}

/* 128 random bits, positive. */
static int random_serial(X509 *x)
{
	unsigned char b[16];
	BIGNUM *bn;
	int ok;

	if (RAND_bytes(b, sizeof(b)) != 1)
		return -1;
	b[0] = (unsigned char)((b[0] & 0x7f) | 0x40);
	bn = BN_bin2bn(b, sizeof(b), NULL);
	ok = bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
	BN_free(bn);
	return ok ? 0 : -1;
}

/* The names a client may use for this machine: localhost, the loopback addresses and the host
 * name (when it is a plain DNS name). */
static void alt_names(char *out, size_t outsz)
{
	char host[256] = "";
	bool plain = gethostname(host, sizeof(host)) == 0 && host[0];

	host[sizeof(host) - 1] = '\0';
	for (const char *p = host; plain && *p; p++)
		plain = isalnum((unsigned char)*p) || *p == '-' || *p == '.';
	plain = plain && strcmp(host, "localhost") != 0;
	snprintf(out, outsz, "DNS:localhost,IP:127.0.0.1,IP:::1%s%s", plain ? ",DNS:" : "",
	         plain ? host : "");
}

/* A self-signed server certificate for key. NULL on failure. */
static X509 *make_cert(EVP_PKEY *key)
{
	X509 *x = X509_new();
	X509_NAME *name;
	char san[400];

	if (!x || !X509_set_version(x, X509_VERSION_3) || random_serial(x) < 0 ||
	    !X509_gmtime_adj(X509_getm_notBefore(x), -BACKDATE_S) ||
	    !X509_time_adj_ex(X509_getm_notAfter(x), VALID_DAYS, 0, NULL) ||
	    !X509_set_pubkey(x, key))
		goto fail;
	name = X509_get_subject_name(x);
	if (!X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	                                (const unsigned char *)COMMON_NAME, -1, -1, 0) ||
	    !X509_set_issuer_name(x, name))
		goto fail;
	alt_names(san, sizeof(san));
	if (add_ext(x, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
	    add_ext(x, NID_key_usage, "critical,digitalSignature") < 0 ||
	    add_ext(x, NID_ext_key_usage, "serverAuth") < 0 ||
	    add_ext(x, NID_subject_key_identifier, "hash") < 0 ||
	    add_ext(x, NID_subject_alt_name, san) < 0 || X509_sign(x, key, EVP_sha256()) <= 0)
		goto fail;
	return x;
fail:
	X509_free(x);
	return NULL;
}

/* The PEM text of a private key (PKCS#8, unencrypted) or else of a certificate, without its
 * last newline (malloc'd; NULL on failure). The memory BIO is wiped when freed. */
static char *pem_text(EVP_PKEY *key, X509 *cert)
{
	BIO *b = BIO_new(BIO_s_secmem());
	char *data, *out = NULL;
	long n;

	if (!b)
		return NULL;
	if (key ? PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL)
	        : PEM_write_bio_X509(b, cert)) {
		n = BIO_get_mem_data(b, &data);
		while (n > 0 && data[n - 1] == '\n')
			n--;
		if (n > 0)
			out = strndup(data, (size_t)n);
	}
	BIO_free(b);
	return out;
}

static void free_secret(char *text)
{
	if (text) {
		OPENSSL_cleanse(text, strlen(text));
		free(text);
	}
}

/* Replaces path with text (mode 0600, fsynced, renamed into place). */
static int write_file(const char *path, const char *text, char *err, size_t errsz)
{
	char tmp[PATH_MAX];
	const char *stage = NULL;
	int fd;

	if (snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path) >= (int)sizeof(tmp))
		return fail(err, errsz, "%s: path too long", path);
	fd = mkstemp(tmp); /* mode 0600 */
	if (fd < 0)
		return fail(err, errsz, "cannot create %s: %s", tmp, strerror(errno));
	if (fileio_commit(fd, tmp, path, text, &stage) < 0)
		return fail(err, errsz, "cannot %s %s: %s", stage ? stage : "write", path,
		            strerror(errno));
	return 0;
}

/* Makes the directory (0700) or tightens its mode. */
static int make_dir(const char *dir, char *err, size_t errsz)
{
	struct stat st;

	if (mkdir(dir, 0700) == 0)
		return fileio_sync_parent(dir) < 0
		               ? fail(err, errsz, "cannot sync %s: %s", dir, strerror(errno))
		               : 0;
	if (errno != EEXIST || stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
		return fail(err, errsz, "cannot create the directory %s: %s", dir,
		            errno == EEXIST ? "not a directory" : strerror(errno));
	if ((st.st_mode & 077) && chmod(dir, 0700) < 0)
		return fail(err, errsz, "cannot chmod %s to 0700: %s", dir, strerror(errno));
	return 0;
}

/* True when path exists; its mode is tightened to 0600. */
static bool keep_file(const char *path)
{
	struct stat st;

	if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
		return false;
	if (st.st_mode & 077)
		chmod(path, 0600);
	return true;
}

/* A new key and certificate written to key_path, then cert_path. */
static int generate(const char *cert_path, const char *key_path, char *err, size_t errsz)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *cert = key ? make_cert(key) : NULL;
	char *ktext = cert ? pem_text(key, NULL) : NULL;
	char *ctext = ktext ? pem_text(NULL, cert) : NULL;
	int rc = -1;

	if (!ctext)
		fail(err, errsz, "cannot generate a TLS key and certificate");
	else if (write_file(key_path, ktext, err, errsz) == 0 &&
	         write_file(cert_path, ctext, err, errsz) == 0) {
		rc = fileio_sync_parent(cert_path) < 0
		             ? fail(err, errsz, "cannot sync %s: %s", cert_path, strerror(errno))
		             : 0;
	}
	free_secret(ktext);
	free(ctext);
	X509_free(cert);
	EVP_PKEY_free(key);
	return rc;
}

int tls_self_signed(const char *state_dir, char *cert_path, size_t certsz, char *key_path,
                    size_t keysz, bool *created, char *err, size_t errsz)
{
	char dir[PATH_MAX];
	bool have_cert, have_key;

	ERR_clear_error();
	*created = false;
	if (snprintf(dir, sizeof(dir), "%s/%s", state_dir, TLS_SELF_SIGNED_DIR) >=
	            (int)sizeof(dir) ||
	    snprintf(cert_path, certsz, "%s/%s", dir, TLS_SELF_SIGNED_CERT) >= (int)certsz ||
	    snprintf(key_path, keysz, "%s/%s", dir, TLS_SELF_SIGNED_KEY) >= (int)keysz)
		return fail(err, errsz, "%s: path too long", state_dir);
	if (make_dir(dir, err, errsz) < 0)
		return -1;
	have_key = keep_file(key_path);
	have_cert = keep_file(cert_path);
	if (have_cert && have_key)
		return 0;
	/* none yet, or a pair cut short (the key is written first) or half removed: a new one */
	if (generate(cert_path, key_path, err, errsz) < 0)
		return -1;
	*created = true;
	return 0;
}

/* A passphrase prompt would block a gateway without a terminal: encrypted keys are refused. */
static int no_passphrase(char *buf, int size, int rwflag, void *user)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)user;
	return 0;
}

static void format_fingerprint(const unsigned char md[32], char fp[TLS_FINGERPRINT_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";

	memcpy(fp, "sha256:", 7);
	for (size_t i = 0; i < 32; i++) {
		fp[7 + 2 * i] = hex[md[i] >> 4];
		fp[8 + 2 * i] = hex[md[i] & 15];
	}
	fp[TLS_FINGERPRINT_LEN] = '\0';
}

int tls_check(const char *cert_path, const char *key_path, char fp[TLS_FINGERPRINT_LEN + 1],
              char *err, size_t errsz)
{
	X509 *cert = NULL;
	EVP_PKEY *key = NULL;
	unsigned char md[32];
	unsigned int n = 0;
	FILE *f;
	int rc = -1;

	ERR_clear_error();
	f = fopen(cert_path, "r");
	if (!f)
		return fail(err, errsz, "TLS certificate %s: %s", cert_path, strerror(errno));
	cert = PEM_read_X509(f, NULL, no_passphrase, NULL);
	fclose(f);
	if (!cert) {
		fail(err, errsz, "TLS certificate %s: no PEM certificate in it", cert_path);
		goto done;
	}
	f = fopen(key_path, "r");
	if (!f) {
		fail(err, errsz, "TLS key %s: %s", key_path, strerror(errno));
		goto done;
	}
	key = PEM_read_PrivateKey(f, NULL, no_passphrase, NULL);
	fclose(f);
	if (!key) {
		fail(err, errsz, "TLS key %s: no unencrypted PEM private key in it", key_path);
		goto done;
	}
	if (X509_check_private_key(cert, key) != 1) {
		fail(err, errsz, "TLS certificate %s and key %s do not belong together", cert_path,
		     key_path);
		goto done;
	}
	if (X509_digest(cert, EVP_sha256(), md, &n) != 1 || n != sizeof(md)) {
		fail(err, errsz, "TLS certificate %s: cannot hash it", cert_path);
		goto done;
	}
	format_fingerprint(md, fp);
	rc = 0;
done:
	EVP_PKEY_free(key);
	X509_free(cert);
	return rc;
}

/*
 * tls.c - TLS for rediss:// stores: the client's OpenSSL context (the CA
 * that signs the servers' certificates, an optional client certificate
 * and key) and the handshake on each new connection, which checks the
 * server's certificate against that CA, its validity dates and the name
 * expected of it.
 *
 * How: one SSL_CTX per store, made at open and shared (reference counted)
 * by the store's connections and the watcher's; OpenSSL allows SSL_new on
 * one SSL_CTX from many threads. Each new connection gets its own SSL with
 * the name to check (SSL_set1_host, or the IP address when the name is
 * one) and to send as SNI (not for an IP address), and hiredis_ssl's
 * redisInitiateSSL runs the handshake on the connected socket, bounded by
 * the socket timeouts set to the time left. A failed handshake is reported
 * with OpenSSL's verdict on the certificate ("certificate has expired",
 * "hostname mismatch", "unable to get local issuer certificate") or the
 * alert the server sent. The private key is read from a file that must be
 * a regular file of the user's (or root's), readable by no one else, as
 * the password file (fs/secret.c); its bytes are wiped after parsing.
 *
 * What not: no certificate revocation lists or OCSP, no session reuse
 * across connections, no key passphrases (an encrypted key is refused),
 * no TLS on hiredis 0.14 (Debian 12's): there every function here refuses
 * with -ENOTSUP and says how to build with TLS.
 */
#include "redis_i.h"
#include "clock.h"
#include "config.h"
#include "fileio.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NO_TLS_HINT "this semcachefs is built without TLS (hiredis 0.14 has none): " \
	"build it against hiredis 1.x with hiredis_ssl (tools/build-hiredis.sh, " \
	"meson -Dhiredis_prefix=PREFIX; ./setup.sh does both)"

#if SEMCACHE_REDIS_TLS

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hiredis/hiredis_ssl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#define KEY_MAX (64 * 1024)

struct rconn_tls {
	SSL_CTX *ctx;            /* immutable once made */
	char name[256];          /* immutable: the name every server's
				  * certificate must carry; "" = each node's
				  * host */
	int refs;                /* atomic (__atomic builtins) */
};

/* The reason of OpenSSL's last error on this thread, or dflt. */
static const char *ssl_reason(const char *dflt)
{
	unsigned long e = ERR_peek_last_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;

	return r ? r : dflt;
}

/* The private key in path (checked like the password file) into ctx. */
static int load_key(SSL_CTX *ctx, const char *path, char *err, size_t errlen)
{
	struct stat st;
	char *buf = NULL;
	EVP_PKEY *key = NULL;
	BIO *bio = NULL;
	ssize_t n;
	int ret = 0, fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);

	if (fd < 0) {
		ret = -errno;
		errbuf_set(err, errlen, "redis_tls_key='%s': %s", path,
			   strerror(errno));
		return ret;
	}
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		errbuf_set(err, errlen, "redis_tls_key='%s' is not a regular file",
			   path);
		ret = -EINVAL;
		goto out;
	}
	if ((st.st_uid != getuid() && st.st_uid != 0) || (st.st_mode & 077)) {
		errbuf_set(err, errlen, "redis_tls_key='%s' has owner %u and mode %04o: "
			   "it must be yours (or root's) and readable by no one else "
			   "(chmod 600 '%s')", path, (unsigned)st.st_uid,
			   (unsigned)(st.st_mode & 07777), path);
		ret = -EPERM;
		goto out;
	}
	buf = malloc(KEY_MAX);
	if (!buf) {
		ret = -ENOMEM;
		errbuf_set(err, errlen, "redis_tls_key: out of memory");
		goto out;
	}
	n = read(fd, buf, KEY_MAX);
	if (n < 0 || n == KEY_MAX) {
		ret = n < 0 ? -EIO : -EFBIG;
		errbuf_set(err, errlen, "redis_tls_key='%s': %s", path,
			   n < 0 ? strerror(errno) : "larger than 64 KiB");
		goto out;
	}
	ERR_clear_error();
	bio = BIO_new_mem_buf(buf, (int)n);
	/* no passphrase callback: an encrypted key fails here */
	key = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, (void *)"") : NULL;
	if (!key) {
		errbuf_set(err, errlen, "redis_tls_key='%s' holds no unencrypted PEM "
			   "private key: %s", path, ssl_reason("unreadable"));
		ret = -EINVAL;
		goto out;
	}
	if (SSL_CTX_use_PrivateKey(ctx, key) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		errbuf_set(err, errlen, "redis_tls_key='%s' does not go with the "
			   "certificate of redis_tls_cert: %s", path,
			   ssl_reason("mismatch"));
		ret = -EINVAL;
	}
out:
	EVP_PKEY_free(key);
	BIO_free(bio);
	if (buf) {
		explicit_bzero(buf, KEY_MAX);
		free(buf);
	}
	close(fd);
	return ret;
}

int rconn_tls_new(const struct store_options *o, struct rconn_tls **out,
		  char *err, size_t errlen)
{
	const char *ca = o ? o->redis_tls_ca : NULL;
	const char *cert = o ? o->redis_tls_cert : NULL;
	const char *key = o ? o->redis_tls_key : NULL;
	const char *name = o ? o->redis_tls_sni : NULL;
	struct rconn_tls *t;
	int ret = -EINVAL;

	*out = NULL;
	if (!cert != !key) {
		errbuf_set(err, errlen, "redis_tls_cert and redis_tls_key go together: "
			   "give both or neither");
		return -EINVAL;
	}
	if (name && (!*name || strlen(name) >= sizeof(t->name) ||
		     strpbrk(name, " \t\r\n/@"))) {
		errbuf_set(err, errlen, "redis_tls_sni='%.64s' is not a host name", name);
		return -EINVAL;
	}
	t = calloc(1, sizeof(*t));
	if (!t) {
		errbuf_set(err, errlen, "out of memory");
		return -ENOMEM;
	}
	t->refs = 1;
	snprintf(t->name, sizeof(t->name), "%s", name ? name : "");
	ERR_clear_error();
	t->ctx = SSL_CTX_new(TLS_client_method());
	if (!t->ctx) {
		errbuf_set(err, errlen, "tls: %s", ssl_reason("no SSL context"));
		ret = -ENOMEM;
		goto fail;
	}
	SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, NULL);
	if (ca && access(ca, R_OK)) {
		errbuf_set(err, errlen, "redis_tls_ca='%s': %s", ca, strerror(errno));
		goto fail;
	}
	if (ca ? SSL_CTX_load_verify_locations(t->ctx, ca, NULL) != 1 :
		 SSL_CTX_set_default_verify_paths(t->ctx) != 1) {
		errbuf_set(err, errlen, "redis_tls_ca='%s' holds no PEM CA certificate: %s",
			   ca ? ca : "(the system's)", ssl_reason("unreadable"));
		goto fail;
	}
	if (cert && access(cert, R_OK)) {
		errbuf_set(err, errlen, "redis_tls_cert='%s': %s", cert, strerror(errno));
		goto fail;
	}
	if (cert && SSL_CTX_use_certificate_chain_file(t->ctx, cert) != 1) {
		errbuf_set(err, errlen, "redis_tls_cert='%s' holds no PEM certificate: %s",
			   cert, ssl_reason("unreadable"));
		goto fail;
	}
	if (key) {
		ret = load_key(t->ctx, key, err, errlen);
		if (ret)
			goto fail;
	}
	*out = t;
	return 0;
fail:
	rconn_tls_unref(t);
	return ret;
}

struct rconn_tls *rconn_tls_ref(struct rconn_tls *t)
{
	if (t)
		__atomic_add_fetch(&t->refs, 1, __ATOMIC_RELAXED);
	return t;
}

void rconn_tls_unref(struct rconn_tls *t)
{
	if (!t || __atomic_sub_fetch(&t->refs, 1, __ATOMIC_ACQ_REL))
		return;
	SSL_CTX_free(t->ctx);
	free(t);
}

int rconn_tls_connect(redisContext *c, const struct rconn_tls *t,
		      const char *host, int64_t deadline, char *why,
		      size_t whylen)
{
	const char *name = t->name[0] ? t->name : host;
	unsigned char ip[16];
	bool is_ip = inet_pton(AF_INET, name, ip) == 1 ||
		     inet_pton(AF_INET6, name, ip) == 1;
	int64_t left = deadline - clock_mono_ms();
	long verdict;
	SSL *ssl;

	if (left <= 0) {
		snprintf(why, whylen, "tls: no time left for the handshake");
		return -ETIMEDOUT;
	}
	/* the handshake's reads and writes wait at most this long each */
	redisSetTimeout(c, (struct timeval){ (time_t)(left / 1000),
				(suseconds_t)(left % 1000) * 1000 });
	ERR_clear_error();
	ssl = SSL_new(t->ctx);
	if (!ssl || (is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name) != 1 :
		     SSL_set1_host(ssl, name) != 1 ||
		     SSL_set_tlsext_host_name(ssl, name) != 1)) {
		snprintf(why, whylen, "tls: cannot check the name '%.64s': %s", name,
			 ssl_reason("out of memory"));
		SSL_free(ssl);
		return -ENOMEM;
	}
	if (redisInitiateSSL(c, ssl) == REDIS_OK) {
		c->privdata = ssl;   /* owned by c from here; for rconn_tls_pending */
		return 0;
	}
	/* on failure the SSL stays ours */
	verdict = SSL_get_verify_result(ssl);
	if (verdict != X509_V_OK)
		snprintf(why, whylen, "tls: the server's certificate is refused: %s "
			 "(expected name '%.64s')",
			 X509_verify_cert_error_string(verdict), name);
	else
		snprintf(why, whylen, "tls handshake failed: %s", c->errstr);
	SSL_free(ssl);
	ERR_clear_error();   /* not to be taken for a later failure's reason */
	if (strstr(c->errstr, "timed out") || strstr(c->errstr, "temporarily"))
		return -ETIMEDOUT;
	return -ECONNABORTED;
}

bool rconn_tls_on(const redisContext *c)
{
	return c->privctx != NULL;
}

bool rconn_tls_pending(const redisContext *c)
{
	return c->privctx && c->privdata && SSL_pending(c->privdata) > 0;
}

void rconn_tls_explain(redisContext *c)
{
	unsigned long e = ERR_peek_last_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;

	if (c->privctx && r)
		snprintf(c->errstr, sizeof(c->errstr), "tls: %s", r);
	ERR_clear_error();
}

int store_redis_tls_check(const struct store_options *o, char *err,
			  size_t errlen)
{
	struct rconn_tls *t;
	int ret = rconn_tls_new(o, &t, err, errlen);

	rconn_tls_unref(t);
	return ret;
}

#else /* !SEMCACHE_REDIS_TLS */

int rconn_tls_new(const struct store_options *o, struct rconn_tls **out,
		  char *err, size_t errlen)
{
	*out = NULL;
	errbuf_set(err, errlen, "store=rediss://: %s", NO_TLS_HINT);
	return -ENOTSUP;
}

struct rconn_tls *rconn_tls_ref(struct rconn_tls *t) { return t; }
void rconn_tls_unref(struct rconn_tls *t) { }

int rconn_tls_connect(redisContext *c, const struct rconn_tls *t,
		      const char *host, int64_t deadline, char *why,
		      size_t whylen)
{
	snprintf(why, whylen, "%s", NO_TLS_HINT);
	return -ENOTSUP;
}

bool rconn_tls_on(const redisContext *c) { return false; }
bool rconn_tls_pending(const redisContext *c) { return false; }
void rconn_tls_explain(redisContext *c) { }

int store_redis_tls_check(const struct store_options *o, char *err,
			  size_t errlen)
{
	return rconn_tls_new(o, &(struct rconn_tls *){ NULL }, err, errlen);
}

#endif

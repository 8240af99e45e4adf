/*
 * tls.c: the client library's TLS, for tls:HOST:PORT endpoints.
 *
 * The library has no event loop, so it drives OpenSSL directly on its
 * non-blocking socket: common.c calls tls_read() and tls_write() where it
 * would call read(2) and write(2), with the same return conventions
 * (-1 and errno EAGAIN when the socket is not ready), so that its
 * buffering, corking and poll(2) waits stay as they are. tls_read() takes
 * everything OpenSSL has already decrypted, so a poll(2) on the socket
 * never misses a frame sitting inside OpenSSL (tls_pending() says so for
 * the rare record larger than the buffer).
 *
 * The broker is always verified: its certificate must chain to the CA
 * file given (tls_ca, $PATCHBAY_TLS_CA) or, without one, to the system's
 * CAs, and must name the host of the endpoint (a DNS name, or an IP
 * address for "tls:127.0.0.1:7401"). A client certificate is presented
 * when tls_cert and tls_key (or $PATCHBAY_TLS_CERT, $PATCHBAY_TLS_KEY) are
 * given. TLS 1.2 at least.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <arpa/inet.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "clients/lib/internal.h"

/*
 * OpenSSL's socket BIO writes with write(2), which raises SIGPIPE when the
 * broker has gone; a library must not kill its program for that, nor
 * change the program's signals. This BIO is the socket BIO with send(2)
 * and MSG_NOSIGNAL for writing, as the plain connections do.
 */
static BIO_METHOD	*tls_bio_method;
static pthread_once_t	 tls_bio_once = PTHREAD_ONCE_INIT;

static int
tls_bio_write(BIO *bio, const char *buf, int len)
{
	ssize_t	n;

	BIO_clear_retry_flags(bio);
	n = send((int)BIO_get_fd(bio, NULL), buf, (size_t)len, MSG_NOSIGNAL);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK ||
	    errno == EINTR))
		BIO_set_retry_write(bio);
	return (int)n;
}

static void
tls_bio_init(void)
{
	const BIO_METHOD	*sock = BIO_s_socket();
	BIO_METHOD		*m;

	if ((m = BIO_meth_new(BIO_TYPE_SOCKET, "patchbay socket")) == NULL)
		return;
	if (BIO_meth_set_write(m, tls_bio_write) != 1 ||
	    BIO_meth_set_read(m, BIO_meth_get_read(sock)) != 1 ||
	    BIO_meth_set_puts(m, BIO_meth_get_puts(sock)) != 1 ||
	    BIO_meth_set_ctrl(m, BIO_meth_get_ctrl(sock)) != 1 ||
	    BIO_meth_set_create(m, BIO_meth_get_create(sock)) != 1 ||
	    BIO_meth_set_destroy(m, BIO_meth_get_destroy(sock)) != 1) {
		BIO_meth_free(m);
		return;
	}
	tls_bio_method = m;
}

/* A BIO on fd (not closed with it) that never raises SIGPIPE; or NULL. */
static BIO *
tls_bio(int fd)
{
	BIO	*bio;

	if (pthread_once(&tls_bio_once, tls_bio_init) != 0 ||
	    tls_bio_method == NULL || (bio = BIO_new(tls_bio_method)) == NULL)
		return NULL;
	BIO_set_fd(bio, fd, BIO_NOCLOSE);
	return bio;
}

/* The option, else the variable, else NULL. */
static const char *
tls_opt(const char *opt, const char *var)
{
	const char	*v;

	if (opt != NULL && *opt != '\0')
		return opt;
	v = getenv(var);
	return v != NULL && *v != '\0' ? v : NULL;
}

/* OpenSSL's last reason ("certificate verify failed"), or what. */
static const char *
tls_reason(char *buf, size_t len, const char *what)
{
	unsigned long	e = ERR_peek_error();

	if (e == 0)
		return what;
	ERR_error_string_n(e, buf, len);
	ERR_clear_error();
	return strrchr(buf, ':') != NULL ? strrchr(buf, ':') + 1 : buf;
}

/* A context that verifies the broker and may present our certificate. */
static SSL_CTX *
tls_client_ctx(const struct pb_options *opts, const char *where)
{
	SSL_CTX		*ctx;
	const char	*ca, *cert, *key;
	char		 buf[256];

	ca = tls_opt(opts != NULL ? opts->tls_ca : NULL, "PATCHBAY_TLS_CA");
	cert = tls_opt(opts != NULL ? opts->tls_cert : NULL,
	    "PATCHBAY_TLS_CERT");
	key = tls_opt(opts != NULL ? opts->tls_key : NULL,
	    "PATCHBAY_TLS_KEY");
	if ((cert == NULL) != (key == NULL)) {
		common_set_connect_error("%s: a client certificate needs both "
		    "a certificate and its key (--tls-cert and --tls-key, or "
		    "PATCHBAY_TLS_CERT and PATCHBAY_TLS_KEY)", where);
		return NULL;
	}
	ERR_clear_error();
	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
		common_set_connect_error("%s: %s", where,
		    tls_reason(buf, sizeof(buf), "out of memory"));
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	/* Output moves when the buffer grows between two tries. */
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (ca != NULL ? SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1 :
	    SSL_CTX_set_default_verify_paths(ctx) != 1) {
		common_set_connect_error("%s: TLS CA %s: %s", where,
		    ca != NULL ? ca : "(the system's)",
		    tls_reason(buf, sizeof(buf), "cannot load"));
		goto fail;
	}
	if (cert != NULL && SSL_CTX_use_certificate_chain_file(ctx,
	    cert) != 1) {
		common_set_connect_error("%s: TLS certificate %s: %s", where,
		    cert, tls_reason(buf, sizeof(buf), "cannot load"));
		goto fail;
	}
	if (key != NULL && (SSL_CTX_use_PrivateKey_file(ctx, key,
	    SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1)) {
		common_set_connect_error("%s: TLS key %s: %s", where, key,
		    tls_reason(buf, sizeof(buf), "cannot load"));
		goto fail;
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

/*
 * Waits for the socket as OpenSSL asked (err: SSL_ERROR_WANT_*), until
 * deadline. 0 when ready, -ETIMEDOUT, or a negative errno.
 */
static int
tls_wait(int fd, int err, uint64_t deadline)
{
	struct pollfd	pfd = { .fd = fd };
	int		r;

	pfd.events = err == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN;
	for (;;) {
		r = poll(&pfd, 1, common_ms_left(deadline));
		if (r > 0)
			return 0;
		if (r == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}

/* Starts TLS on b->fd and checks the broker; see internal.h. */
int
tls_start(struct bconn *b, const struct endpoint *ep,
    const struct pb_options *opts, uint64_t deadline)
{
	SSL		*ssl;
	SSL_CTX		*ctx;
	BIO		*bio = NULL;
	X509_VERIFY_PARAM *param;
	struct in6_addr	 addr;
	long		 vr;
	char		 buf[256];
	int		 r, e;
	bool		 is_ip;

	if ((ctx = tls_client_ctx(opts, ep->text)) == NULL)
		return -EINVAL;
	ssl = SSL_new(ctx);
	SSL_CTX_free(ctx);	/* the session holds its own reference */
	if (ssl == NULL || (bio = tls_bio(b->fd)) == NULL) {
		common_set_connect_error("%s: %s", ep->text,
		    tls_reason(buf, sizeof(buf), "out of memory"));
		SSL_free(ssl);
		return -ENOMEM;
	}
	SSL_set_bio(ssl, bio, bio);	/* the session owns the BIO now */
	/* The name the broker's certificate must carry: the endpoint's. */
	is_ip = inet_pton(AF_INET, ep->host, &addr) == 1 ||
	    inet_pton(AF_INET6, ep->host, &addr) == 1;
	param = SSL_get0_param(ssl);
	X509_VERIFY_PARAM_set_hostflags(param,
	    X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	if (is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, ep->host) != 1 :
	    (SSL_set_tlsext_host_name(ssl, ep->host) != 1 ||
	    SSL_set1_host(ssl, ep->host) != 1)) {
		common_set_connect_error("%s: %s", ep->text,
		    tls_reason(buf, sizeof(buf), "bad host name"));
		SSL_free(ssl);
		return -EINVAL;
	}
	while ((r = SSL_connect(ssl)) != 1) {
		e = SSL_get_error(ssl, r);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
			if ((r = tls_wait(b->fd, e, deadline)) == 0)
				continue;
			common_set_connect_error("%s: TLS handshake: %s",
			    ep->text, r == -ETIMEDOUT ? "no answer within the "
			    "connect timeout" : strerror(-r));
			SSL_free(ssl);
			return r;
		}
		if ((vr = SSL_get_verify_result(ssl)) != X509_V_OK)
			/* "certificate has expired", "hostname mismatch" */
			common_set_connect_error("%s: TLS: the broker's "
			    "certificate is refused: %s", ep->text,
			    X509_verify_cert_error_string(vr));
		else
			common_set_connect_error("%s: TLS handshake failed: %s",
			    ep->text, tls_reason(buf, sizeof(buf), e ==
			    SSL_ERROR_SYSCALL || e == SSL_ERROR_ZERO_RETURN ?
			    "the broker closed the connection (does it speak "
			    "TLS there? is a client certificate required?)" :
			    "protocol error"));
		ERR_clear_error();
		SSL_free(ssl);
		return -EPROTO;
	}
	b->ssl = ssl;
	return 0;
}

/*
 * Maps an SSL_read/SSL_write result to read(2)'s: n, 0 at the end, or -1
 * with errno (EAGAIN: not ready; EPROTO: TLS broke; the socket's error).
 */
static ssize_t
tls_result(struct bconn *b, int r)
{
	int	e;

	if (r > 0)
		return r;
	e = SSL_get_error(b->ssl, r);
	switch (e) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		errno = EAGAIN;
		return -1;
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	case SSL_ERROR_SYSCALL:
		ERR_clear_error();
		if (errno == 0)
			return 0;	/* closed without close_notify */
		return -1;
	default:
		ERR_clear_error();
		errno = EPROTO;
		return -1;
	}
}

/* read(2) over TLS; see internal.h. */
ssize_t
tls_read(struct bconn *b, void *buf, size_t len)
{
	errno = 0;
	return tls_result(b, SSL_read(b->ssl, buf, len > INT32_MAX ?
	    INT32_MAX : (int)len));
}

/* write(2) over TLS; see internal.h. */
ssize_t
tls_write(struct bconn *b, const void *buf, size_t len)
{
	errno = 0;
	return tls_result(b, SSL_write(b->ssl, buf, len > INT32_MAX ?
	    INT32_MAX : (int)len));
}

/* True when OpenSSL holds decrypted bytes not yet read; see internal.h. */
bool
tls_pending(const struct bconn *b)
{
	return b->ssl != NULL && SSL_pending(b->ssl) > 0;
}

/* Ends the session (no close_notify wait) and frees it; see internal.h. */
void
tls_end(struct bconn *b)
{
	if (b->ssl == NULL)
		return;
	/* close_notify, if the socket takes it now; no wait for the reply. */
	if (!b->dead)
		(void)SSL_shutdown(b->ssl);
	SSL_free(b->ssl);
	b->ssl = NULL;
	ERR_clear_error();
}

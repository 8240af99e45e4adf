/*
 * tls.c: the broker's side of TLS, as far as it is policy.
 *
 * transport/conn.c carries the bytes (SSL_read, SSL_write); this file
 * makes the SSL_CTX the tls: listeners hand each new connection, from
 * tls_cert, tls_key and tls_client_ca, and maps a verified client
 * certificate to the roles tls_client_roles gives it. A context is made
 * whole or not at all, so that a reload with a bad file keeps the old
 * one serving.
 *
 * What a context allows: TLS 1.2 or later; for 1.2 only the forward-
 * secret AEAD suites (ECDHE with AES-GCM or ChaCha20-Poly1305), for 1.3
 * OpenSSL's defaults (all AEAD); no renegotiation, no compression. With
 * tls_client_ca a client must present a certificate that CA signed,
 * checked during the handshake (expiry included); a peer that fails never
 * reaches HELLO.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "broker/broker.h"

#define TLS_CIPHERS_12	"ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL"

/* Frees a role map; see broker.h. */
void
tls_roles_free(struct tls_role_map *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i].name);
	free(v);
}

/* The role bit of one word ("client", "worker", "admin"), or 0. */
static unsigned
tls_role_bit(const char *s, size_t len)
{
	for (int r = ROLE_CLIENT; r <= ROLE_ADMIN; r++)
		if (strlen(proto_role_name(r)) == len &&
		    strncmp(proto_role_name(r), s, len) == 0)
			return 1u << r;
	return 0;
}

/* Parses "NAME=ROLE[+ROLE], ..."; see broker.h. */
int
tls_roles_parse(const char *s, struct tls_role_map **ret, size_t *ret_n,
    char *err)
{
	struct tls_role_map	*v = NULL, *nv;
	char			**words = NULL, *eq, *role, *plus, *copy;
	size_t			 n = 0, i;
	unsigned		 bit, roles;
	int			 r;

	/* Commas or blanks between the entries. */
	if ((copy = strdup(s)) == NULL) {
		snprintf(err, UTIL_ERRLEN, "out of memory");
		return -ENOMEM;
	}
	for (char *c = copy; *c != '\0'; c++)
		if (*c == ',')
			*c = ' ';
	r = strv_split(copy, &words, err);
	free(copy);
	if (r != 0)
		return r;
	for (i = 0; words[i] != NULL; i++) {
		r = -EINVAL;
		if ((eq = strrchr(words[i], '=')) == NULL || eq == words[i] ||
		    eq[1] == '\0') {
			snprintf(err, UTIL_ERRLEN, "'%s': expected NAME=ROLE "
			    "(a certificate's name, then client, worker or "
			    "admin, several joined with +)", words[i]);
			goto fail;
		}
		*eq = '\0';
		roles = 0;
		for (role = eq + 1;; role = plus + 1) {
			plus = strchr(role, '+');
			bit = tls_role_bit(role, plus != NULL ?
			    (size_t)(plus - role) : strlen(role));
			if (bit == 0) {
				snprintf(err, UTIL_ERRLEN, "'%s=%s': unknown "
				    "role (client, worker or admin)", words[i],
				    eq + 1);
				goto fail;
			}
			roles |= bit;
			if (plus == NULL)
				break;
		}
		if (n == TLS_ROLES_MAX) {
			snprintf(err, UTIL_ERRLEN, "more than %d names",
			    TLS_ROLES_MAX);
			goto fail;
		}
		r = -ENOMEM;
		if ((nv = realloc(v, (n + 1) * sizeof(*v))) == NULL)
			goto fail;
		v = nv;
		if ((v[n].name = strdup(words[i])) == NULL) {
			snprintf(err, UTIL_ERRLEN, "out of memory");
			goto fail;
		}
		v[n++].roles = roles;
	}
	if (n == 0) {
		snprintf(err, UTIL_ERRLEN, "no NAME=ROLE given");
		r = -EINVAL;
		goto fail;
	}
	strv_free(words);
	*ret = v;
	*ret_n = n;
	return 0;
fail:
	if (r == -ENOMEM)
		snprintf(err, UTIL_ERRLEN, "out of memory");
	strv_free(words);
	tls_roles_free(v, n);
	return r;
}

/*
 * Writes OpenSSL's first queued error (the cause: "no start line" rather
 * than the "PEM lib" it led to), or what, into err after prefix.
 */
static void
tls_error(char *err, const char *prefix, const char *what)
{
	unsigned long	e = ERR_peek_error();
	char		buf[256];
	const char	*reason = what;

	if (e != 0) {
		ERR_error_string_n(e, buf, sizeof(buf));
		/* "error:0A080002:SSL routines::system lib" -> the end. */
		reason = strrchr(buf, ':') != NULL ? strrchr(buf, ':') + 1 :
		    buf;
	}
	snprintf(err, UTIL_ERRLEN, "%s: %s", prefix, reason);
	ERR_clear_error();
}

/* Checks that a key file is not readable by other users, as token files. */
static int
tls_key_private(const char *path, char *err)
{
	struct stat	st;

	if (stat(path, &st) == -1) {
		snprintf(err, UTIL_ERRLEN, "tls_key %s: %s", path,
		    strerror(errno));
		return -1;
	}
	return server_secret_private("tls_key", path, st.st_mode, err);
}

/* Makes the server's SSL_CTX from the files; see broker.h. */
int
tls_ctx_new(const char *cert, const char *key, const char *client_ca,
    struct ssl_ctx_st **ret, char *err)
{
	static const unsigned char	 sid[] = "patchbayd";
	SSL_CTX				*ctx;
	STACK_OF(X509_NAME)		*names;
	char				 prefix[UTIL_ERRLEN];

	if (cert == NULL || key == NULL) {
		snprintf(err, UTIL_ERRLEN, "a tls: endpoint needs tls_cert "
		    "and tls_key");
		return -1;
	}
	if (tls_key_private(key, err) != 0)
		return -1;
	ERR_clear_error();
	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
		tls_error(err, "TLS", "cannot make a context");
		return -1;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	/* A peer that closes without close_notify has just gone away. */
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION |
	    SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE |
	    SSL_OP_IGNORE_UNEXPECTED_EOF);
	if (SSL_CTX_set_cipher_list(ctx, TLS_CIPHERS_12) != 1) {
		tls_error(err, "TLS", "no cipher suite");
		goto fail;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		snprintf(prefix, sizeof(prefix), "tls_cert %s", cert);
		tls_error(err, prefix, "cannot load");
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		snprintf(prefix, sizeof(prefix), "tls_key %s", key);
		tls_error(err, prefix, "cannot load");
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		snprintf(prefix, sizeof(prefix), "tls_key %s does not match "
		    "tls_cert %s", key, cert);
		tls_error(err, prefix, "mismatch");
		goto fail;
	}
	/*
	 * Read-ahead: one read(2) brings every record that arrived, up to
	 * 64 KiB, instead of two reads a record (conn.c drains them all).
	 */
	SSL_CTX_set_read_ahead(ctx, 1);
	SSL_CTX_set_default_read_buffer_len(ctx, 64 * 1024);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
	/* Resumed sessions of verified clients need an id context. */
	SSL_CTX_set_session_id_context(ctx, sid, sizeof(sid) - 1);
	if (client_ca != NULL) {
		snprintf(prefix, sizeof(prefix), "tls_client_ca %s",
		    client_ca);
		if (SSL_CTX_load_verify_locations(ctx, client_ca, NULL) != 1 ||
		    (names = SSL_load_client_CA_file(client_ca)) == NULL) {
			tls_error(err, prefix, "no certificate in it");
			goto fail;
		}
		SSL_CTX_set_client_CA_list(ctx, names);
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER |
		    SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	}
	*ret = ctx;
	return 0;
fail:
	SSL_CTX_free(ctx);
	return -1;
}

/* Frees a context (sessions made from it keep their reference). */
void
tls_ctx_free(struct ssl_ctx_st *ctx)
{
	SSL_CTX_free(ctx);
}

/* Adds the roles of every map entry named name (len bytes, no NUL in it). */
static unsigned
tls_roles_of(const struct tls_role_map *map, size_t n, const char *name,
    size_t len)
{
	unsigned	roles = 0;

	if (memchr(name, '\0', len) != NULL)
		return 0;	/* a name with a NUL in it is a trick */
	for (size_t i = 0; i < n; i++)
		if (strlen(map[i].name) == len &&
		    memcmp(map[i].name, name, len) == 0)
			roles |= map[i].roles;
	return roles;
}

/* The roles a verified client certificate maps to; see broker.h. */
unsigned
tls_peer_roles(struct ssl_st *ssl, const struct tls_role_map *map, size_t n,
    char *who, size_t wholen)
{
	X509			*cert;
	X509_NAME		*subject;
	GENERAL_NAMES		*sans;
	const GENERAL_NAME	*gn;
	char			 cn[256];
	unsigned		 roles = 0;
	int			 len;

	snprintf(who, wholen, "no client certificate");
	if (ssl == NULL || (cert = SSL_get0_peer_certificate(ssl)) == NULL ||
	    SSL_get_verify_result(ssl) != X509_V_OK)
		return 0;
	subject = X509_get_subject_name(cert);
	len = X509_NAME_get_text_by_NID(subject, NID_commonName, cn,
	    sizeof(cn));
	if (len > 0) {
		snprintf(who, wholen, "certificate CN=%s", cn);
		roles |= tls_roles_of(map, n, cn, (size_t)len);
	} else
		snprintf(who, wholen, "certificate without a CN");
	sans = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	for (int i = 0; sans != NULL && i < sk_GENERAL_NAME_num(sans); i++) {
		gn = sk_GENERAL_NAME_value(sans, i);
		if (gn->type == GEN_DNS || gn->type == GEN_EMAIL)
			roles |= tls_roles_of(map, n, (const char *)
			    ASN1_STRING_get0_data(gn->d.ia5),
			    (size_t)ASN1_STRING_length(gn->d.ia5));
	}
	GENERAL_NAMES_free(sans);
	/* "*": any certificate the CA signed. */
	roles |= tls_roles_of(map, n, "*", 1);
	return roles;
}

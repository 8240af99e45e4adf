/*
 * test-tls.c: tls: endpoints, against a real patchbayd and the real CLI,
 * with a CA and certificates made by the openssl CLI for each test
 * (tests/make-certs.sh). Without the openssl CLI each test says so on
 * stderr and is skipped (.ci/run installs it).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <check.h>

#include "tests/harness.h"

/* Where make-certs.sh put the files of one test. */
struct certs {
	char	dir[256];
};

/* dir/name into buf. */
static const char *
cert_path(const struct certs *c, const char *name, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s", c->dir, name);
	return buf;
}

/*
 * Makes the CA and certificates (and client ones named in names), or
 * returns false when the openssl CLI is missing (the caller skips).
 */
static bool
certs_make(struct certs *c, const char *const *names)
{
	const char	*argv[16] = { "/bin/bash" };
	char		 script[512], *err = NULL;
	int		 n = 1, status;

	if (system("command -v openssl >/dev/null 2>&1") != 0) {
		fprintf(stderr, "SKIP: the openssl CLI is not installed (Debian "
		    "package openssl): TLS tests not run\n");
		return false;
	}
	harness_tmpdir(c->dir, sizeof(c->dir));
	snprintf(script, sizeof(script), "%s/tests/make-certs.sh",
	    getenv("PATCHBAY_SRCDIR"));
	argv[n++] = script;
	argv[n++] = c->dir;
	for (; names != NULL && *names != NULL; names++)
		argv[n++] = *names;
	argv[n] = NULL;
	status = harness_run(argv, NULL, NULL, 0, NULL, &err, 60000);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "make-certs.sh: %s", err);
	free(err);
	return true;
}

/*
 * Runs `patchbay run --broker ep [--tls-ca ca] [--tls-cert/--tls-key of
 * client] fn payload`; returns its exit status, its output and errors.
 */
static int
run_job(const char *ep, const char *ca, const struct certs *c,
    const char *client, const char *fn, const char *payload, char **out,
    char **err)
{
	const char	*argv[16] = { harness_cli(), "run", "--broker", ep };
	char		 cert[300], key[300];
	int		 n = 4, status;

	if (ca != NULL) {
		argv[n++] = "--tls-ca";
		argv[n++] = ca;
	}
	if (client != NULL) {
		snprintf(cert, sizeof(cert), "%s/%s.crt", c->dir, client);
		snprintf(key, sizeof(key), "%s/%s.key", c->dir, client);
		argv[n++] = "--tls-cert";
		argv[n++] = cert;
		argv[n++] = "--tls-key";
		argv[n++] = key;
	}
	argv[n++] = fn;
	argv[n++] = payload;
	argv[n] = NULL;
	status = harness_run(argv, NULL, NULL, 0, out, err, 20000);
	ck_assert_msg(WIFEXITED(status), "patchbay run did not exit");
	return WEXITSTATUS(status);
}

/* A worker process serving fn with `rev` over ep; it dies with the test. */
static pid_t
spawn_worker(const char *ep, const char *fn, const char *const *tls_env,
    const char *log)
{
	return harness_spawn((const char *[]){ harness_cli(), "worker",
	    "--broker", ep, "-e", "rev", fn, NULL }, tls_env, log);
}

/* The port of a "tls:127.0.0.1:PORT" or "tcp:..." endpoint. */
static int
ep_port(const char *ep)
{
	return atoi(strrchr(ep, ':') + 1);
}

/* A connected plain TCP socket to 127.0.0.1:port. */
static int
tcp_connect(int port)
{
	struct sockaddr_in	sin = { .sin_family = AF_INET };
	int			fd;

	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_ge(fd = socket(AF_INET, SOCK_STREAM, 0), 0);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sin, sizeof(sin)),
	    0);
	return fd;
}

/*
 * A broker with a tls: endpoint: the server verified (by IP and by name),
 * a wrong CA refused, a hostname mismatch refused (after `ctl reload`
 * swapped in a certificate for another name, which also shows that a
 * reload reads the certificate again), plaintext on the TLS port and TLS
 * on the plaintext port refused cleanly within the hello deadline, and the
 * worker that was serving all along still serving.
 */
START_TEST(tls_server_verified_and_refusals)
{
	struct harness_broker	 b;
	struct certs		 c;
	char			 ca[300], other[300], crt[300], key[300];
	char			 env_ca[320], wlog[300], byname[96];
	char			*out = NULL, *err = NULL, buf[64];
	pid_t			 w;
	int			 fd;
	ssize_t			 n;

	if (!certs_make(&c, NULL))
		return;
	cert_path(&c, "ca.crt", ca, sizeof(ca));
	cert_path(&c, "other-ca.crt", other, sizeof(other));
	cert_path(&c, "server.crt", crt, sizeof(crt));
	cert_path(&c, "server.key", key, sizeof(key));
	harness_broker_start(&b, (const char *[]){ "-l", "tls:127.0.0.1:0",
	    "--tls-cert", crt, "--tls-key", key, "--hello-timeout", "1s",
	    NULL }, false);
	ck_assert_msg(b.tls_ep[0] != '\0', "no tls: endpoint in the ready "
	    "file");

	/* A worker over TLS, its CA from the environment. */
	snprintf(env_ca, sizeof(env_ca), "PATCHBAY_TLS_CA=%s", ca);
	snprintf(wlog, sizeof(wlog), "%s/worker.log", c.dir);
	w = spawn_worker(b.tls_ep, "rev", (const char *[]){ env_ca, NULL },
	    wlog);
	ck_assert(harness_wait_log(&b, "transport=tls addr=127.0.0.1", 10000));
	ck_assert(harness_wait_log(&b, "registered fn=\"rev\"", 10000));

	/* The server verified by its IP address, then by its DNS name. */
	ck_assert_int_eq(run_job(b.tls_ep, ca, &c, NULL, "rev", "hello", &out,
	    &err), 0);
	ck_assert_msg(strcmp(out, "olleh") == 0, "out '%s' err '%s'", out,
	    err);
	free(out);
	free(err);
	snprintf(byname, sizeof(byname), "tls:localhost:%d",
	    ep_port(b.tls_ep));
	ck_assert_int_eq(run_job(byname, ca, &c, NULL, "rev", "abc", &out,
	    &err), 0);
	ck_assert_str_eq(out, "cba");
	free(out);
	free(err);

	/* 512 KiB each way: frames across many records and reads. */
	{
		size_t	 len = 512 * 1024;
		char	*in = malloc(len), *want = malloc(len);
		int	 status;

		ck_assert(in != NULL && want != NULL);
		for (size_t i = 0; i < len; i += 8) {
			memcpy(in + i, "abcdefg\n", 8);
			memcpy(want + i, "gfedcba\n", 8);
		}
		status = harness_run((const char *[]){ harness_cli(), "run",
		    "--broker", b.tls_ep, "--tls-ca", ca, "rev", NULL }, NULL,
		    in, len, &out, &err, 20000);
		ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		    "%s", err);
		ck_assert_uint_eq(strlen(out), len);
		ck_assert(memcmp(out, want, len) == 0);
		free(out);
		free(err);
		free(in);
		free(want);
	}

	/* A CA that did not sign the broker's certificate. */
	ck_assert_int_eq(run_job(b.tls_ep, other, &c, NULL, "rev", "x", NULL,
	    &err), 11);
	ck_assert_msg(strstr(err, "the broker's certificate is refused: "
	    "unable to get local issuer certificate") != NULL, "%s", err);
	free(err);

	/*
	 * Plaintext on the TLS port: refused at once, named in the log (a
	 * broker that kept it waiting would make the CLI say "no WELCOME
	 * within the connect timeout" instead).
	 */
	{
		char	plain[96];

		snprintf(plain, sizeof(plain), "tcp:127.0.0.1:%d",
		    ep_port(b.tls_ep));
		ck_assert_int_eq(run_job(plain, NULL, &c, NULL, "rev", "x",
		    NULL, &err), 11);
		ck_assert_msg(strstr(err, "closed the connection") != NULL,
		    "%s", err);
		free(err);
	}
	ck_assert(harness_wait_log(&b, "TLS handshake failed: wrong version "
	    "number", 5000));
	/* TLS on the plaintext port: the broker answers in plaintext. */
	ck_assert_int_ne(b.tcp_ep[0], '\0');
	{
		char	tls_on_tcp[96];

		snprintf(tls_on_tcp, sizeof(tls_on_tcp), "tls:127.0.0.1:%d",
		    ep_port(b.tcp_ep));
		ck_assert_int_eq(run_job(tls_on_tcp, ca, &c, NULL, "rev", "x",
		    NULL, &err), 11);
		ck_assert_msg(strstr(err, "TLS handshake failed") != NULL,
		    "%s", err);
		free(err);
	}
	/*
	 * A peer that connects to the TLS port and says nothing is closed by
	 * the hello deadline (1s here; the read gives up after 20 s).
	 */
	fd = tcp_connect(ep_port(b.tls_ep));
	{
		struct timeval	tv = { 20, 0 };

		ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv,
		    sizeof(tv)), 0);
	}
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		continue;
	ck_assert_msg(n == 0, "the silent peer was not closed: %s",
	    strerror(errno));
	close(fd);
	ck_assert(harness_wait_log(&b, "no HELLO within 1000 ms", 5000));

	/* The worker that was there all along still answers. */
	ck_assert_int_eq(run_job(b.tls_ep, ca, &c, NULL, "rev", "still", &out,
	    NULL), 0);
	ck_assert_str_eq(out, "llits");
	free(out);

	/* Another certificate, for broker.invalid only, read by reload. */
	{
		char	wcrt[300], wkey[300];

		cert_path(&c, "wrong-host.crt", wcrt, sizeof(wcrt));
		cert_path(&c, "wrong-host.key", wkey, sizeof(wkey));
		ck_assert_int_eq(rename(wcrt, crt), 0);
		ck_assert_int_eq(rename(wkey, key), 0);
	}
	ck_assert_msg(harness_ctl(&b, false, NULL, &err, "reload", NULL) == 0,
	    "ctl reload: %s", err);
	free(err);
	ck_assert(harness_wait_log(&b, "TLS certificate", 5000));
	ck_assert_int_eq(run_job(b.tls_ep, ca, &c, NULL, "rev", "x", NULL,
	    &err), 11);
	ck_assert_msg(strstr(err, "the broker's certificate is refused: "
	    "IP address mismatch") != NULL, "%s", err);
	free(err);
	ck_assert_int_eq(run_job(byname, ca, &c, NULL, "rev", "x", NULL,
	    &err), 11);
	ck_assert_msg(strstr(err, "certificate is refused: hostname mismatch")
	    != NULL, "%s", err);
	free(err);
	/* A reload with a bad file keeps the certificate in force. */
	harness_write_file(key, sizeof(key), c.dir, "server.key", "junk\n");
	ck_assert_int_eq(chmod(key, 0600), 0);
	ck_assert_int_eq(harness_ctl(&b, false, NULL, &err, "reload", NULL),
	    1);
	ck_assert_msg(strstr(err, "tls_key") != NULL, "%s", err);
	free(err);
	harness_kill(w, SIGTERM);
	ck_assert_int_eq(harness_broker_stop(&b) & 0xff7f, 0);
}
END_TEST

/*
 * Mutual TLS: without a certificate, with one of another CA, or with an
 * expired one, the handshake fails; a certificate maps to the roles
 * tls_client_roles gives its name, and to no other; admin over TLS with
 * an admin certificate.
 */
START_TEST(mutual_tls_maps_certificates_to_roles)
{
	struct harness_broker	 b;
	struct certs		 c;
	char			 ca[300], crt[300], key[300], wlog[300];
	char			 e_ca[320], e_crt[320], e_key[320];
	char			*out = NULL, *err = NULL;
	pid_t			 w;
	int			 status;

	if (!certs_make(&c, (const char *[]){ "worker-1", "client-1", "ops",
	    NULL }))
		return;
	cert_path(&c, "ca.crt", ca, sizeof(ca));
	cert_path(&c, "server.crt", crt, sizeof(crt));
	cert_path(&c, "server.key", key, sizeof(key));
	harness_broker_start(&b, (const char *[]){ "-l", "tls:127.0.0.1:0",
	    "--tls-cert", crt, "--tls-key", key, "--tls-client-ca", ca,
	    "--tls-client-roles", "worker-1=worker, client-1=client ops=admin",
	    NULL }, false);

	/* The worker's certificate from the environment. */
	snprintf(e_ca, sizeof(e_ca), "PATCHBAY_TLS_CA=%s", ca);
	snprintf(e_crt, sizeof(e_crt), "PATCHBAY_TLS_CERT=%s/worker-1.crt",
	    c.dir);
	snprintf(e_key, sizeof(e_key), "PATCHBAY_TLS_KEY=%s/worker-1.key",
	    c.dir);
	snprintf(wlog, sizeof(wlog), "%s/worker.log", c.dir);
	w = spawn_worker(b.tls_ep, "rev", (const char *[]){ e_ca, e_crt, e_key,
	    NULL }, wlog);
	ck_assert(harness_wait_log(&b, "registered fn=\"rev\"", 10000));

	ck_assert_int_eq(run_job(b.tls_ep, ca, &c, "client-1", "rev", "mtls",
	    &out, &err), 0);
	ck_assert_msg(strcmp(out, "sltm") == 0, "%s %s", out, err);
	free(out);
	free(err);
	/* No certificate: the handshake fails. */
	ck_assert_int_eq(run_job(b.tls_ep, ca, &c, NULL, "rev", "x", NULL,
	    &err), 11);
	free(err);
	ck_assert(harness_wait_log(&b, "TLS handshake failed: peer did not "
	    "return a certificate", 5000));
	/* Expired. */
	ck_assert_int_eq(run_job(b.tls_ep, ca, &c, "expired", "rev", "x", NULL,
	    &err), 11);
	free(err);
	ck_assert(harness_wait_log(&b, "TLS handshake failed: certificate "
	    "verify failed", 5000));
	/* The worker's certificate may not be a client. */
	ck_assert_int_eq(run_job(b.tls_ep, ca, &c, "worker-1", "rev", "x", NULL,
	    &err), 11);
	ck_assert_msg(strstr(err, "the certificate CN=worker-1 may not take "
	    "the client role here (tls_client_roles)") != NULL, "%s", err);
	free(err);
	ck_assert(harness_wait_log(&b, "refused the client role: its "
	    "certificate CN=worker-1 is not given it by tls_client_roles",
	    5000));

	/* Admin: the ops certificate, and not the client's. */
	{
		const char	*argv[] = { harness_cli(), "ctl", "--broker",
				    b.tls_ep, "--tls-ca", ca, "--tls-cert", NULL,
				    "--tls-key", NULL, "status", NULL };
		char		 acrt[300], akey[300];

		snprintf(acrt, sizeof(acrt), "%s/ops.crt", c.dir);
		snprintf(akey, sizeof(akey), "%s/ops.key", c.dir);
		argv[7] = acrt;
		argv[9] = akey;
		status = harness_run(argv, NULL, NULL, 0, &out, &err, 20000);
		ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		    "%s", err);
		ck_assert_msg(strstr(out, "rev") != NULL, "%s", out);
		free(out);
		free(err);
		snprintf(acrt, sizeof(acrt), "%s/client-1.crt", c.dir);
		snprintf(akey, sizeof(akey), "%s/client-1.key", c.dir);
		status = harness_run(argv, NULL, NULL, 0, NULL, &err, 20000);
		ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 11);
		ck_assert_msg(strstr(err, "the certificate CN=client-1 may "
		    "not take the admin role here") != NULL, "%s", err);
		free(err);
	}
	harness_kill(w, SIGTERM);
	ck_assert_int_eq(harness_broker_stop(&b) & 0xff7f, 0);
}
END_TEST

/* Bad TLS settings stop patchbayd at start with a sentence naming them. */
START_TEST(tls_settings_checked_at_start)
{
	struct certs	 c;
	char		 crt[300], key[300], *err = NULL;
	int		 status;

	if (!certs_make(&c, NULL))
		return;
	cert_path(&c, "server.crt", crt, sizeof(crt));
	cert_path(&c, "server.key", key, sizeof(key));
	status = harness_run((const char *[]){ harness_patchbayd(), "-l",
	    "tls:127.0.0.1:0", NULL }, NULL, NULL, 0, NULL, &err, 5000);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 2);
	ck_assert_msg(strstr(err, "a tls: endpoint needs tls_cert and "
	    "tls_key") != NULL, "%s", err);
	free(err);
	/* The certificate as its own key. */
	status = harness_run((const char *[]){ harness_patchbayd(), "-l",
	    "tls:127.0.0.1:0", "--tls-cert", crt, "--tls-key", crt, NULL },
	    NULL, NULL, 0, NULL, &err, 5000);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 2);
	ck_assert_msg(strstr(err, "tls_key ") != NULL && strstr(err, crt) !=
	    NULL, "%s", err);
	free(err);
	/* A key others may read. */
	ck_assert_int_eq(chmod(key, 0644), 0);
	status = harness_run((const char *[]){ harness_patchbayd(), "-l",
	    "tls:127.0.0.1:0", "--tls-cert", crt, "--tls-key", key, NULL },
	    NULL, NULL, 0, NULL, &err, 5000);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 2);
	ck_assert_msg(strstr(err, "is readable by other users (mode 0644)") !=
	    NULL, "%s", err);
	free(err);
	status = harness_run((const char *[]){ harness_patchbayd(),
	    "--tls-client-roles", "worker-1=boss", NULL }, NULL, NULL, 0, NULL,
	    &err, 5000);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 2);
	ck_assert_msg(strstr(err, "'worker-1=boss': unknown role") != NULL,
	    "%s", err);
	free(err);
}
END_TEST

static Suite *
tls_suite(void)
{
	Suite	*s = suite_create("tls");
	TCase	*tc = tcase_create("tls");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, tls_server_verified_and_refusals);
	tcase_add_test(tc, mutual_tls_maps_certificates_to_roles);
	tcase_add_test(tc, tls_settings_checked_at_start);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return harness_main(tls_suite());
}

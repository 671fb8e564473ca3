/* Config parsing: every error names file, line and reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

static const char good[] =
	"; comment\n"
	"[agent]\n"
	"max_connections = 50\n"
	"handshake_timeout = 1.5s\n"
	"idle_timeout = 10m\n"
	"log_level = debug\n"
	"\n"
	"[token soft]\n"
	"module = softhsm2\n"
	"uri = pkcs11:token=demo;serial=abc\n"
	"pin_source = file:/etc/mtls-agent/pin\n"
	"\n"
	"[identity corp]\n"
	"token = soft\n"
	"key = pkcs11:object=corp-key;type=private\n"
	"cert = pkcs11:object=corp-cert;type=cert\n"
	"ca = /etc/ssl/corp-ca.pem\n"
	"\n"
	"[tunnel web]\n"
	"listen = /run/mtls/web.sock\n"
	"mode = 0660\n"
	"connect = api.example:443\n"
	"identity = corp\n"
	"alpn = http/1.1\n"
	"min_tls = 1.3\n"
	"[tunnel tcp]\n"
	"listen = 127.0.0.1:8080\n"
	"connect = [::1]:8443\n"
	"identity = corp\n"
	"sni = api.example\n";

static struct config *parse_ok(const char *text)
{
	struct mtls_error err = { 0 };
	struct config *c = NULL;

	if (config_parse("t.conf", text, strlen(text), &c, &err) != MTLS_OK)
		fail_msg("unexpected error: %s", err.detail);
	return c;
}

static void expect_error(const char *text, const char *detail)
{
	struct mtls_error err = { 0 };
	struct config *c = NULL;

	assert_int_equal(config_parse("t.conf", text, strlen(text), &c, &err),
			 MTLS_ERR_CONFIG);
	assert_null(c);
	if (strstr(err.detail, detail) == NULL)
		fail_msg("detail '%s' lacks '%s'", err.detail, detail);
}

static void test_good(void **state)
{
	struct config *c = parse_ok(good);

	(void)state;
	assert_int_equal(c->agent.max_connections, 50);
	assert_int_equal(c->agent.handshake_timeout_ms, 1500);
	assert_int_equal(c->agent.idle_timeout_ms, 600000);
	assert_int_equal(c->n_tokens, 1);
	assert_string_equal(c->tokens[0].module, "softhsm2");
	assert_string_equal(c->tokens[0].uri, "pkcs11:token=demo;serial=abc");
	assert_int_equal(c->n_identities, 1);
	assert_int_equal(c->identities[0].token, 0);
	assert_int_equal(c->n_tunnels, 2);
	assert_string_equal(c->tunnels[0].listen_path, "/run/mtls/web.sock");
	assert_int_equal(c->tunnels[0].mode, 0660);
	assert_string_equal(c->tunnels[0].connect_host, "api.example");
	assert_int_equal(c->tunnels[0].connect_port, 443);
	assert_int_equal(c->tunnels[0].min_tls, CFG_TLS_1_3);
	assert_string_equal(c->tunnels[1].listen_host, "127.0.0.1");
	assert_int_equal(c->tunnels[1].listen_port, 8080);
	assert_string_equal(c->tunnels[1].connect_host, "::1");
	assert_int_equal(c->tunnels[1].connect_port, 8443);
	assert_string_equal(c->tunnels[1].sni, "api.example");
	assert_int_equal(c->tunnels[1].min_tls, CFG_TLS_1_2);
	config_free(c);
}

static void test_errors_name_line(void **state)
{
	(void)state;
	expect_error("[agent]\nmax_connections = 0\n", "t.conf:2: max_connections");
	expect_error("[agent]\nbogus = 1\n", "t.conf:2: unknown key 'bogus'");
	expect_error("[nope]\n", "t.conf:1: unknown section [nope]");
	expect_error("[token a b]\n", "t.conf:1: bad name");
	expect_error("x = 1\n", "t.conf:1:");
	expect_error("[agent]\nthis line has no equals\n", "t.conf:2: syntax error");
	expect_error("[token t]\nmodule = m\nuri = pk:x\n", "t.conf:3: uri must start");
	expect_error("[token t]\nmodule = m\nuri = pkcs11:token=t\n"
		     "pin_source = /pin\n", "t.conf:4: pin_source");
	expect_error("[token t]\nmodule = m\n", "t.conf:1: [token t]: uri= is required");
	expect_error("[token t]\nmodule=m\nuri=pkcs11:token=t\n[token t]\n",
		     "t.conf:4: token 't' defined twice");
}

static void test_references(void **state)
{
	static const char base[] = "[token t]\nmodule = m\nuri = pkcs11:token=t\n"
				   "[identity i]\nkey = pkcs11:object=k\n"
				   "cert = /c.pem\n";
	char buf[1024];

	(void)state;
	snprintf(buf, sizeof(buf), "%s[tunnel x]\nlisten = /s\nconnect = h:1\n"
		 "identity = nope\n", base);
	expect_error(buf, "t.conf:7: [tunnel x]: no [identity nope]");
	snprintf(buf, sizeof(buf), "%s[tunnel x]\nlisten = /s\nconnect = h:1\n"
		 "identity = i\n", base);
	expect_error(buf, "no trust anchors");
	snprintf(buf, sizeof(buf), "%sca = /ca.pem\n[tunnel x]\nlisten = /s\n"
		 "connect = h:1\nidentity = i\n[tunnel y]\nlisten = /s\n"
		 "connect = h:2\nidentity = i\n", base);
	expect_error(buf, "t.conf:12: [tunnel y]: listens where [tunnel x]");
	expect_error("[identity i]\nkey = /file.key\n", "t.conf:2: key must be a pkcs11: URI");
}

static void test_tunnel_values(void **state)
{
	(void)state;
	expect_error("[tunnel x]\nlisten = 0.0.0.0:80\n", "only loopback");
	expect_error("[tunnel x]\nlisten = 192.168.1.1:80\n", "only loopback");
	expect_error("[tunnel x]\nlisten = relative.sock\n", "absolute socket path");
	expect_error("[tunnel x]\nconnect = host\n", "connect: HOST:PORT");
	expect_error("[tunnel x]\nconnect = host:0\n", "connect: HOST:PORT");
	expect_error("[tunnel x]\nconnect = host:65536\n", "connect: HOST:PORT");
	expect_error("[tunnel x]\nmode = 999\n", "mode: octal");
	expect_error("[tunnel x]\nmin_tls = 1.1\n", "min_tls: 1.2 or 1.3");
	expect_error("[tunnel x]\nverify = no\n", "cannot be turned off");
	expect_error("[tunnel x]\nowner = no-such-user-xyz\n", "unknown user");
}

static void test_long_line(void **state)
{
	char buf[600];

	(void)state;
	memset(buf, 'a', sizeof(buf));
	memcpy(buf, "[agent]\nlog_level = ", 20);
	buf[sizeof(buf) - 2] = '\n';
	buf[sizeof(buf) - 1] = '\0';
	expect_error(buf, "t.conf:2: line longer than");
}

static void test_nul_byte(void **state)
{
	static const char text[] = "[agent]\nlog_level = info\0x\n";
	struct mtls_error err = { 0 };
	struct config *c = NULL;

	(void)state;
	assert_int_equal(config_parse("t.conf", text, sizeof(text) - 1, &c, &err),
			 MTLS_ERR_CONFIG);
	assert_non_null(strstr(err.detail, "NUL byte"));
}

static void test_durations(void **state)
{
	unsigned v;

	(void)state;
	assert_int_equal(config_parse_duration_ms("10", &v), 0);
	assert_int_equal(v, 10000);
	assert_int_equal(config_parse_duration_ms("250ms", &v), 0);
	assert_int_equal(v, 250);
	assert_int_equal(config_parse_duration_ms("2h", &v), 0);
	assert_int_equal(v, 7200000);
	assert_int_equal(config_parse_duration_ms("1.5m", &v), 0);
	assert_int_equal(v, 90000);
	assert_int_equal(config_parse_duration_ms("-1s", &v), -1);
	assert_int_equal(config_parse_duration_ms("1y", &v), -1);
	assert_int_equal(config_parse_duration_ms("", &v), -1);
	assert_int_equal(config_parse_duration_ms("9999999999h", &v), -1);
}

static void test_load_missing_file(void **state)
{
	struct mtls_error err = { 0 };
	struct config *c = NULL;

	(void)state;
	assert_int_equal(config_load("/nonexistent/mtls.conf", &c, &err),
			 MTLS_ERR_CONFIG);
	assert_non_null(strstr(err.detail, "/nonexistent/mtls.conf"));
}

/* A PIV card: the SO credential and the slots renewals may use. */
static void test_card_keys(void **state)
{
	static const char base[] =
		"[token card]\nmodule = /usr/lib/x86_64-linux-gnu/libykcs11.so\n"
		"uri = pkcs11:model=YubiKey%%20YK4\npin_source = file:/p\n"
		"so_pin_source = %s\n"
		"[identity i]\ntoken = card\nkey = pkcs11:id=%%01;type=private\n"
		"cert = pkcs11:id=%%01;type=cert\nca = /ca.pem\nkey_ids = %s\n";
	char buf[1024];
	struct config *c;

	(void)state;
	snprintf(buf, sizeof(buf), base, "file:/mgmt", "01, 05 0a0b");
	c = parse_ok(buf);
	assert_string_equal(c->tokens[0].so_pin_source, "file:/mgmt");
	assert_int_equal(c->identities[0].renew.n_key_ids, 3);
	assert_int_equal(c->identities[0].renew.key_id_len[0], 1);
	assert_int_equal(c->identities[0].renew.key_ids[1][0], 0x05);
	assert_int_equal(c->identities[0].renew.key_id_len[2], 2);
	assert_int_equal(c->identities[0].renew.key_ids[2][1], 0x0b);
	config_free(c);
	snprintf(buf, sizeof(buf), base, "unlock", "01, 05");
	expect_error(buf, "t.conf:5: so_pin_source: file:PATH");
	snprintf(buf, sizeof(buf), base, "file:/m", "01");
	expect_error(buf, "t.conf:11: key_ids: at least two");
	snprintf(buf, sizeof(buf), base, "file:/m", "01, 01");
	expect_error(buf, "key_ids: an id twice");
	snprintf(buf, sizeof(buf), base, "file:/m", "01, 5");
	expect_error(buf, "key_ids: hex CKA_IDs");
	snprintf(buf, sizeof(buf), base, "file:/m", "01, 0g");
	expect_error(buf, "key_ids: hex CKA_IDs");
	snprintf(buf, sizeof(buf), base, "file:/m",
		 "01, 000102030405060708090a0b0c0d0e0f10");
	expect_error(buf, "key_ids: an id is 1 to 16 bytes");
	snprintf(buf, sizeof(buf), base, "file:/m", "1 2 3 4 5 6 7 8 9");
	expect_error(buf, "key_ids: hex CKA_IDs");
	snprintf(buf, sizeof(buf), base, "file:/m",
		 "01 02 03 04 05 06 07 08 09");
	expect_error(buf, "key_ids: at most 8");
}

/* est_bootstrap_key and est_bootstrap_cert: both or neither, with
 * enroll = est; an error names the line of the one given. */
static void test_est_bootstrap(void **state)
{
	static const char base[] =
		"[token t]\nmodule = m\nuri = pkcs11:token=t\n"
		"[identity i]\nkey = pkcs11:object=k\ncert = /c.pem\n"
		"enroll = %s\nest_url = https://est.example:8443/.well-known/est\n"
		"est_ca = /est-ca.pem\nissuer_ca = /issuer.pem\n%s%s";
	static const char key[] = "est_bootstrap_key = pkcs11:object=mfg;type=private\n";
	static const char cert[] = "est_bootstrap_cert = pkcs11:object=mfg;type=cert\n";
	char buf[1024];
	struct config *c;

	(void)state;
	snprintf(buf, sizeof(buf), base, "est", key, cert);
	c = parse_ok(buf);
	assert_string_equal(c->identities[0].renew.est_bootstrap_key,
			    "pkcs11:object=mfg;type=private");
	assert_string_equal(c->identities[0].renew.est_bootstrap_cert,
			    "pkcs11:object=mfg;type=cert");
	assert_null(c->identities[0].renew.est_user);
	config_free(c);
	snprintf(buf, sizeof(buf), base, "est", "", "");
	c = parse_ok(buf);
	assert_null(c->identities[0].renew.est_bootstrap_key);
	assert_null(c->identities[0].renew.est_bootstrap_cert);
	config_free(c);
	/* A PEM file for the certificate, beside HTTP Basic. */
	snprintf(buf, sizeof(buf), base, "est", key,
		 "est_bootstrap_cert = /etc/mtls-agent/idevid.pem\n"
		 "est_user = dev\nest_password_file = /pw\n");
	c = parse_ok(buf);
	assert_string_equal(c->identities[0].renew.est_bootstrap_cert,
			    "/etc/mtls-agent/idevid.pem");
	assert_string_equal(c->identities[0].renew.est_user, "dev");
	config_free(c);

	snprintf(buf, sizeof(buf), base, "est", key, "");
	expect_error(buf, "t.conf:11: [identity i]: est_bootstrap_key= and "
			  "est_bootstrap_cert= go together");
	snprintf(buf, sizeof(buf), base, "est", "", cert);
	expect_error(buf, "t.conf:11: [identity i]: est_bootstrap_key= and "
			  "est_bootstrap_cert= go together");
	snprintf(buf, sizeof(buf), base, "est", "est_user = dev\n", cert);
	expect_error(buf, "t.conf:12: [identity i]: est_bootstrap_key= and "
			  "est_bootstrap_cert= go together");
	snprintf(buf, sizeof(buf), base, "exec\nexec = /bin/true", key, cert);
	expect_error(buf, "t.conf:13: [identity i]: est_bootstrap_key= needs "
			  "enroll = est");
	snprintf(buf, sizeof(buf), base, "est",
		 "est_bootstrap_key = /mfg.key\n", cert);
	expect_error(buf, "t.conf:11: est_bootstrap_key must be a pkcs11: URI");
	snprintf(buf, sizeof(buf), base, "est", key, key);
	expect_error(buf, "t.conf:12: duplicate key");
}

/* enroll = acme: what it needs, the challenge's own key, secrets kept out
 * of the file; every error names file:line. */
/* What a new user gets wrong, each refused with the line and a fix. */
static void test_first_run_mistakes(void **state)
{
	const char tok[] = "[token t]\nmodule = softhsm2\n";
	char buf[512];
	struct config *c;

	(void)state;
	/* URIs: a typo, an unknown value, a bad escape. */
	snprintf(buf, sizeof(buf), "%suri = pkcs11:tokne=acc\n", tok);
	expect_error(buf, "t.conf:3: uri: invalid PKCS#11 URI: pkcs11:tokne=acc: "
		     "an attribute or value RFC 7512 does not define");
	snprintf(buf, sizeof(buf), "%suri = pkcs11:token=acc;type=bogus\n", tok);
	expect_error(buf, "t.conf:3: uri: invalid PKCS#11 URI");
	snprintf(buf, sizeof(buf), "%suri = pkcs11:token=a%%zzc\n", tok);
	expect_error(buf, "t.conf:3: uri: invalid PKCS#11 URI");
	snprintf(buf, sizeof(buf), "%suri = pkcs11:token=a\n[identity i]\n"
		 "key = pkcs11:object=k;typ=private\n", tok);
	expect_error(buf, "t.conf:5: key: invalid PKCS#11 URI");
	snprintf(buf, sizeof(buf), "%suri = pkcs11:token=a\n[identity i]\n"
		 "key = pkcs11:object=k;type=private\n"
		 "cert = pkcs11:object=k;type=cart\n", tok);
	expect_error(buf, "t.conf:6: cert: invalid PKCS#11 URI");
	/* Twice: a section, a key (also a number, which once just won). */
	expect_error("[agent]\nmax_connections = 5\n[agent]\n",
		     "t.conf:3: [agent] a second time (first at line 1)");
	expect_error("[agent]\nmax_connections = 5\nmax_connections = 6\n",
		     "t.conf:3: duplicate key 'max_connections' in [agent] "
		     "(first at line 2)");
	expect_error("[rule r]\nhosts = a\nhosts = b\naction = allow\n",
		     "t.conf:3: duplicate key 'hosts' in [rule r]");
	/* An unterminated header, named on its own line. */
	snprintf(buf, sizeof(buf), "%suri = pkcs11:token=a\n[tunnel api\n"
		 "listen = /run/x.sock\n", tok);
	expect_error(buf, "t.conf:4: section header without its closing ']': "
		     "write [tunnel api]");
	/* Nothing at all, or comments only; unless systemd passes sockets. */
	expect_error("", "t.conf:1: nothing configured");
	expect_error("; just a comment\n\n# another\n", "nothing configured");
	assert_int_equal(setenv("LISTEN_FDS", "1", 1), 0);
	c = parse_ok("; sockets from systemd\n");
	config_free(c);
	unsetenv("LISTEN_FDS");
	/* A section alone is deliberate: kept. */
	c = parse_ok("[agent]\nmetrics = /run/m.sock\n");
	config_free(c);
}

static void test_acme(void **state)
{
	static const char base[] =
		"[token t]\nmodule = m\nuri = pkcs11:token=t\n"
		"[identity i]\nkey = pkcs11:object=k\ncert = pkcs11:object=c\n"
		"enroll = acme\nissuer_ca = /issuer.pem\n%s";
	static const char need[] =
		"acme_directory = https://ca.example/acme/directory\n"
		"acme_ca = /ca.pem\nacme_account_key = pkcs11:object=acct\n";
	char buf[2048], more[1024];
	struct config *c;

	(void)state;
	snprintf(more, sizeof(more), "%sacme_http_listen = 127.0.0.1:5002\n"
		 "acme_eab_kid = kid-1\nacme_eab_hmac = file:/etc/eab\n"
		 "acme_contact = mailto:a@example.com\nacme_timeout = 2m\n"
		 "acme_reenroll = yes\n", need);
	snprintf(buf, sizeof(buf), base, more);
	c = parse_ok(buf);
	assert_int_equal(c->identities[0].renew.enroll, CFG_ENROLL_ACME);
	assert_int_equal(c->identities[0].renew.acme_challenge, CFG_ACME_HTTP01);
	assert_int_equal(c->identities[0].renew.acme_http_port, 5002);
	assert_int_equal(c->identities[0].renew.acme_timeout_ms, 120000);
	assert_int_equal(c->identities[0].renew.acme_reenroll, 1);
	config_free(c);
	snprintf(more, sizeof(more), "%sacme_challenge = dns-01\n"
		 "acme_dns_hook = /usr/lib/dns-hook\n", need);
	snprintf(buf, sizeof(buf), base, more);
	c = parse_ok(buf);
	assert_int_equal(c->identities[0].renew.acme_challenge, CFG_ACME_DNS01);
	config_free(c);

	snprintf(buf, sizeof(buf), base, "acme_ca = /ca.pem\n");
	expect_error(buf, "enroll = acme needs acme_directory=, acme_ca= and "
			  "acme_account_key=");
	snprintf(buf, sizeof(buf), base, need);
	expect_error(buf, "acme_challenge = http-01 needs acme_http_listen=");
	snprintf(more, sizeof(more), "%sacme_challenge = dns-01\n", need);
	snprintf(buf, sizeof(buf), base, more);
	expect_error(buf, "acme_challenge = dns-01 needs acme_dns_hook=");
	snprintf(more, sizeof(more), "%sacme_http_listen = 127.0.0.1:80\n"
		 "acme_eab_kid = kid-1\n", need);
	snprintf(buf, sizeof(buf), base, more);
	expect_error(buf, "acme_eab_kid= and acme_eab_hmac= go together");
	snprintf(buf, sizeof(buf), base, "acme_eab_hmac = c2VjcmV0\n");
	expect_error(buf, "t.conf:9: acme_eab_hmac: file:PATH or credential:NAME");
	snprintf(buf, sizeof(buf), base,
		 "acme_directory = http://ca.example/directory\n");
	expect_error(buf, "t.conf:9: acme_directory: https://");
	snprintf(buf, sizeof(buf), base, "acme_account_key = /acct.key\n");
	expect_error(buf, "t.conf:9: acme_account_key: a pkcs11: URI");
	snprintf(buf, sizeof(buf), base, "acme_challenge = tls-alpn-01\n");
	expect_error(buf, "t.conf:9: acme_challenge: http-01 or dns-01");
	snprintf(buf, sizeof(buf), base, "acme_dns_hook = hook.sh\n");
	expect_error(buf, "t.conf:9: acme_dns_hook: an absolute path");
	snprintf(buf, sizeof(buf), base, "acme_colour = blue\n");
	expect_error(buf, "t.conf:9: unknown key acme_colour");
	snprintf(buf, sizeof(buf), base, "acme_http_listen = 127.0.0.1\n");
	expect_error(buf, "t.conf:9: acme_http_listen: ADDRESS:PORT");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good),
		cmocka_unit_test(test_errors_name_line),
		cmocka_unit_test(test_references),
		cmocka_unit_test(test_tunnel_values),
		cmocka_unit_test(test_long_line),
		cmocka_unit_test(test_nul_byte),
		cmocka_unit_test(test_durations),
		cmocka_unit_test(test_load_missing_file),
		cmocka_unit_test(test_card_keys),
		cmocka_unit_test(test_est_bootstrap),
		cmocka_unit_test(test_acme),
		cmocka_unit_test(test_first_run_mistakes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests for the secrets file: syntax, exact "file:line" errors, file ownership/mode checks. */
#include <airlock/secrets.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

static char err_[512];

/* Parses text expecting failure; returns the error ("(parsed)" if it succeeded). */
static const char *perr(const char *text)
{
	struct al_secrets *s = NULL;

	if (secrets_parse("t", text, &s, err_, sizeof(err_)) == 0) {
		secrets_free(s);
		return "(parsed)";
	}
	if (s)
		return "(out set on error)";
	return err_;
}

static struct al_secrets *pok(const char *text)
{
	struct al_secrets *s = NULL;

	if (secrets_parse("t", text, &s, err_, sizeof(err_)) < 0) {
		printf("#   unexpected error: %s\n", err_);
		return NULL;
	}
	return s;
}

static void test_basic(void)
{
	struct al_secrets *s;
	const struct al_secret *e;

	s = pok("# upstream credentials\n"
		"\n"
		"   \t\n"
		"prod-db user=app password=hunter2\n"
		"  analytics.ro\tuser=reader  password=x   # trailing comment\n"
		"certonly user=svc sslcert=/etc/airlock/c.pem sslkey=/etc/airlock/k.pem\n"
		"both_1 sslkey=/k user=u password=p sslcert=/c\n"
		"kube-client sslcert=/etc/airlock/kc.pem sslkey=/etc/airlock/kk.pem\n"
		"# last line without newline\n"
		"Z user=z password=z");
	CHECK(s != NULL);
	if (!s)
		return;
	CHECK(s->n == 6);
	e = secrets_find(s, "prod-db");
	CHECK(e != NULL);
	if (e) {
		CHECK_STR(e->name, "prod-db");
		CHECK_STR(e->user, "app");
		CHECK_STR(e->password, "hunter2");
		CHECK(e->sslcert == NULL && e->sslkey == NULL);
	}
	e = secrets_find(s, "analytics.ro");
	CHECK(e && strcmp(e->user, "reader") == 0 && strcmp(e->password, "x") == 0);
	e = secrets_find(s, "certonly");
	CHECK(e && !e->password);
	if (e) {
		CHECK_STR(e->sslcert, "/etc/airlock/c.pem");
		CHECK_STR(e->sslkey, "/etc/airlock/k.pem");
	}
	e = secrets_find(s, "kube-client");     /* an HTTPS client certificate: no user */
	CHECK(e && !e->user && !e->password && e->sslcert && e->sslkey);
	e = secrets_find(s, "both_1");
	CHECK(e && e->password && e->sslcert && e->sslkey);
	CHECK(secrets_find(s, "Z") != NULL);
	CHECK(secrets_find(s, "z") == NULL);
	CHECK(secrets_find(s, "prod") == NULL);
	CHECK(secrets_find(s, "") == NULL);
	CHECK(secrets_find(NULL, "prod-db") == NULL);
	CHECK(s->v[0].name == secrets_find(s, "prod-db")->name);
	secrets_free(s);
}

static void test_empty(void)
{
	struct al_secrets *s = pok("");

	CHECK(s && s->n == 0 && secrets_find(s, "x") == NULL);
	secrets_free(s);
	s = pok("# only comments\n\n#\n");
	CHECK(s && s->n == 0);
	secrets_free(s);
	secrets_free(NULL);
}

static void test_quoting(void)
{
	struct al_secrets *s;

	s = pok("a user=\"my user\" password=\"p a#s s\" # comment\n"
		"b user=u password=\"say \\\"hi\\\" \\\\o/\"\n"
		"c user=u password=\"#\"#comment right after the quote\n"
		"d user=u password=\"\ttab\"\n"
		"e user=u password=p\xc3\xa4ss\n");
	CHECK(s && s->n == 5);
	if (!s)
		return;
	CHECK_STR(secrets_find(s, "a")->user, "my user");
	CHECK_STR(secrets_find(s, "a")->password, "p a#s s");
	CHECK_STR(secrets_find(s, "b")->password, "say \"hi\" \\o/");
	CHECK_STR(secrets_find(s, "c")->password, "#");
	CHECK_STR(secrets_find(s, "d")->password, "\ttab");
	CHECK_STR(secrets_find(s, "e")->password, "p\xc3\xa4ss");
	secrets_free(s);
}

static void test_names(void)
{
	char line[200];
	struct al_secrets *s;

	/* 63 characters is the longest name */
	CHECK(al_fmt(line, sizeof(line), "%.63s user=u password=p\n",
		     "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_xyz") == 0);
	s = pok(line);
	CHECK(s && s->n == 1 && strlen(s->v[0].name) == 63);
	secrets_free(s);
	CHECK(al_fmt(line, sizeof(line), "%.64s user=u password=p\n",
		     "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_xyz") == 0);
	CHECK_STR(perr(line),
		  "t:1: invalid credential name (1-63 characters of A-Z a-z 0-9 . _ -)");
	CHECK_STR(perr("a/b user=u password=p\n"),
		  "t:1: invalid credential name (1-63 characters of A-Z a-z 0-9 . _ -)");
	CHECK_STR(perr("\xc3\xa4 user=u password=p\n"),
		  "t:1: invalid credential name (1-63 characters of A-Z a-z 0-9 . _ -)");
	CHECK_STR(perr("\"a\" user=u password=p\n"),
		  "t:1: invalid credential name (1-63 characters of A-Z a-z 0-9 . _ -)");
	CHECK_STR(perr("a#b user=u password=p\n"),
		  "t:1: invalid credential name (1-63 characters of A-Z a-z 0-9 . _ -)");
	CHECK_STR(perr("password=hunter2\n"),
		  "t:1: a line must start with a credential name, not key=value");
}

static void test_errors(void)
{
	CHECK_STR(perr("db\n"), "t:1: credential 'db' has no user=");
	CHECK_STR(perr("db # comment\n"), "t:1: credential 'db' has no user=");
	CHECK_STR(perr("db password=p\n"), "t:1: credential 'db' has no user=");
	CHECK_STR(perr("db user=bob\n"),
		  "t:1: credential 'db' needs password=, sslcert= and sslkey=, header= or bearer=");
	CHECK_STR(perr("a user=x password=y\n\n# c\na user=z password=w\n"),
		  "t:4: duplicate credential 'a' (first on line 1)");
	CHECK_STR(perr("a user=x pass=y\n"),
		  "t:1: unknown key 'pass' (expected user, password, sslcert, sslkey, header or bearer)");
	CHECK_STR(perr("a user=x p@ss=y\n"),
		  "t:1: unknown key (expected user, password, sslcert, sslkey, header or bearer)");
	CHECK_STR(perr("a user=x =y\n"),
		  "t:1: unknown key (expected user, password, sslcert, sslkey, header or bearer)");
	CHECK_STR(perr("a user=x USER=y\n"),
		  "t:1: unknown key 'USER' (expected user, password, sslcert, sslkey, header or bearer)");
	CHECK_STR(perr("a user=x password\n"), "t:1: 'password' needs a value (password=...)");
	CHECK_STR(perr("a user=x password =y\n"), "t:1: 'password' needs a value (password=...)");
	CHECK_STR(perr("a user=x hunter2\n"), "t:1: expected key=value");
	CHECK_STR(perr("a user=x user=y password=p\n"), "t:1: 'user' given twice");
	CHECK_STR(perr("a user=x password=p password=q\n"), "t:1: 'password' given twice");
	CHECK_STR(perr("a user=x sslcert=/c\n"), "t:1: credential 'a': sslcert= needs sslkey= too");
	CHECK_STR(perr("a user=x password=p sslkey=/k\n"),
		  "t:1: credential 'a': sslkey= needs sslcert= too");
	CHECK_STR(perr("a user=x sslcert=c.pem sslkey=/k\n"),
		  "t:1: sslcert must be an absolute path");
	CHECK_STR(perr("a user=x sslcert=/c sslkey=\"k.pem\"\n"),
		  "t:1: sslkey must be an absolute path");
	CHECK_STR(perr("a user=x password=\"abc\n"),
		  "t:1: unterminated quoted value for 'password'");
	CHECK_STR(perr("a user=x password=\"abc"),
		  "t:1: unterminated quoted value for 'password'");
	CHECK_STR(perr("a user=x password=\"abc\\"),
		  "t:1: unterminated quoted value for 'password'");
	CHECK_STR(perr("a user=x password=\"abc\\\"\n"),
		  "t:1: unterminated quoted value for 'password'");
	CHECK_STR(perr("a user=x password=\"a\\nb\"\n"),
		  "t:1: bad escape in quoted value for 'password' (only \\\" and \\\\ are allowed)");
	CHECK_STR(perr("a user=x password=\"a\"b\n"),
		  "t:1: quoted value for 'password' must be followed by a space");
	CHECK_STR(perr("a user=x password=\"a\"\"b\"\n"),
		  "t:1: quoted value for 'password' must be followed by a space");
	CHECK_STR(perr("a user=x password=ab#c\n"),
		  "t:1: '#' inside the unquoted value for 'password'; quote the value");
	CHECK_STR(perr("a user=x password=ab\"c\n"),
		  "t:1: '\"' inside the unquoted value for 'password'; quote the value");
	CHECK_STR(perr("a user= password=p\n"), "t:1: empty value for 'user'");
	CHECK_STR(perr("a user=u password=\n"), "t:1: empty value for 'password'");
	CHECK_STR(perr("a user=u password=\"\"\n"), "t:1: empty value for 'password'");
	CHECK_STR(perr("a user=u password=p\r\n"), "t:1: control character (byte 0x0d)");
	CHECK_STR(perr("a user=u password=\"p\x01\"\n"), "t:1: control character (byte 0x01)");
	CHECK_STR(perr("# ok\n\n\n\n# fine\nb user=u password=p\nc user=u\n"),
		  "t:7: credential 'c' needs password=, sslcert= and sslkey=, header= or bearer=");
	CHECK_STR(perr("x\x7f user=u\n"), "t:1: control character (byte 0x7f)");
	CHECK_STR(perr("f \"user\"=u password=x\n"),
		  "t:1: unknown key (expected user, password, sslcert, sslkey, header or bearer)");
}

/* Error texts give the line and the key, never the value: they end up in logs. */
static void test_errors_hide_values(void)
{
	static const char *const bad[] = {
		"password=hunter2\n",
		"a user=x password=hunter2#\n",
		"a user=x password=\"hunter2\n",
		"a user=x password=\"hunter2\\q\"\n",
		"a user=x password=\"hunter2\"x\n",
		"a user=x password=hunter2 password=hunter2\n",
		"a user=x hunter2\n",
		"a user=x password=hunter2 sslcert=hunter2 sslkey=/k\n",
		"hunter2 user=x password=\"hunter2\n",
	};
	size_t i;

	for (i = 0; i < AL_ARRAY_LEN(bad); i++) {
		const char *e = perr(bad[i]);

		CHECK(strstr(e, "hunter2") == NULL);
		CHECK(strncmp(e, "t:1: ", 5) == 0);
	}
	/* an unknown key is quoted, but the value after it is not */
	CHECK(strstr(perr("a user=x hunter2=1\n"), "'hunter2'") != NULL);
	CHECK(strstr(perr("a user=x sekrit=hunter2\n"), "hunter2") == NULL);
}

static void test_many(void)
{
	char *text = malloc(100 * 40);
	struct al_secrets *s = NULL;
	size_t len = 0;
	int i;

	CHECK(text != NULL);
	if (!text)
		return;
	for (i = 0; i < 100; i++) {
		int n = snprintf(text + len, 100 * 40 - len, "c%d user=u%d password=\"p %d\"\n",
				 i, i, i);

		CHECK(n > 0);
		len += (size_t)n;
	}
	s = pok(text);
	CHECK(s && s->n == 100);
	if (s) {
		CHECK_STR(secrets_find(s, "c0")->password, "p 0");
		CHECK_STR(secrets_find(s, "c99")->user, "u99");
		CHECK_STR(secrets_find(s, "c57")->password, "p 57");
	}
	secrets_free(s);
	free(text);
}

/* ---- Files ------------------------------------------------------------------------------- */

static char dir_[64];

static void path_in(char *buf, size_t len, const char *name)
{
	if (al_fmt(buf, len, "%s/%s", dir_, name) < 0)
		buf[0] = '\0';
}

static int write_file(const char *path, const char *text, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int rc = -1;

	if (fd < 0)
		return -1;
	if (write(fd, text, len) != (ssize_t)len)
		goto out;
	if (fchmod(fd, mode) < 0)
		goto out;
	rc = 0;
out:
	close(fd);
	return rc;
}

static const char *lerr(const char *path)
{
	struct al_secrets *s = NULL;

	if (secrets_load(path, &s, err_, sizeof(err_)) == 0) {
		secrets_free(s);
		return "(loaded)";
	}
	return s ? "(out set on error)" : err_;
}

static const char good_text[] = "db user=app password=\"s3cret pass\"\n";

static void test_file_ok(void)
{
	char path[128], want[512];
	struct al_secrets *s = NULL;

	path_in(path, sizeof(path), "ok.conf");
	CHECK(write_file(path, good_text, strlen(good_text), 0600) == 0);
	CHECK(secrets_load(path, &s, err_, sizeof(err_)) == 0);
	CHECK(s && s->n == 1);
	if (s)
		CHECK_STR(secrets_find(s, "db")->password, "s3cret pass");
	secrets_free(s);
	s = NULL;
	CHECK(chmod(path, 0400) == 0);
	CHECK_STR(lerr(path), "(loaded)");
	CHECK(chmod(path, 0700) == 0);
	CHECK_STR(lerr(path), "(loaded)");

	/* errors inside the file name the path */
	CHECK(write_file(path, "db user=app\n", 12, 0600) == 0);
	CHECK(al_fmt(want, sizeof(want),
		     "%s:1: credential 'db' needs password=, sslcert= and sslkey=, header= or bearer=", path) == 0);
	CHECK_STR(lerr(path), want);
	unlink(path);
}

static void test_file_refused(void)
{
	char path[128], want[512];

	path_in(path, sizeof(path), "bad.conf");
	CHECK(write_file(path, good_text, strlen(good_text), 0644) == 0);
	CHECK(al_fmt(want, sizeof(want),
		     "%s: holds credentials, so it must be owned by root and unreadable by group "
		     "and others (owner uid 0, mode 0644); fix with: chmod 600 %s", path, path) == 0);
	CHECK_STR(lerr(path), want);

	CHECK(chmod(path, 0640) == 0);
	CHECK(strstr(lerr(path), "(owner uid 0, mode 0640); fix with: chmod 600 ") != NULL);
	CHECK(chmod(path, 0601) == 0);
	CHECK(strstr(lerr(path), "(owner uid 0, mode 0601); fix with: chmod 600 ") != NULL);

	CHECK(chmod(path, 0600) == 0);
	CHECK(chown(path, 65534, 0) == 0);
	CHECK(al_fmt(want, sizeof(want),
		     "%s: holds credentials, so it must be owned by root and unreadable by group "
		     "and others (owner uid 65534, mode 0600); fix with: chown root %s",
		     path, path) == 0);
	CHECK_STR(lerr(path), want);

	CHECK(chmod(path, 0644) == 0);
	CHECK(al_fmt(want, sizeof(want),
		     "%s: holds credentials, so it must be owned by root and unreadable by group "
		     "and others (owner uid 65534, mode 0644); fix with: chown root %s && "
		     "chmod 600 %s", path, path, path) == 0);
	CHECK_STR(lerr(path), want);
	unlink(path);

	/* a directory, a FIFO (must not block), a missing file */
	path_in(path, sizeof(path), "d");
	CHECK(mkdir(path, 0700) == 0);
	CHECK(al_fmt(want, sizeof(want), "%s: not a regular file", path) == 0);
	CHECK_STR(lerr(path), want);
	rmdir(path);
	path_in(path, sizeof(path), "fifo");
	CHECK(mkfifo(path, 0600) == 0);
	CHECK(al_fmt(want, sizeof(want), "%s: not a regular file", path) == 0);
	CHECK_STR(lerr(path), want);
	unlink(path);
	path_in(path, sizeof(path), "missing.conf");
	CHECK(al_fmt(want, sizeof(want), "%s: cannot read: No such file or directory", path) == 0);
	CHECK_STR(lerr(path), want);
}

static void test_file_content(void)
{
	static const char with_nul[] = "a user=u password=p\nb user=u pass\0word=p\n";
	char path[128], want[512];
	int fd;

	path_in(path, sizeof(path), "nul.conf");
	CHECK(write_file(path, with_nul, sizeof(with_nul) - 1, 0600) == 0);
	CHECK(al_fmt(want, sizeof(want), "%s:2: NUL byte", path) == 0);
	CHECK_STR(lerr(path), want);
	unlink(path);

	path_in(path, sizeof(path), "big.conf");
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	CHECK(fd >= 0);
	if (fd >= 0) {
		CHECK(ftruncate(fd, 2 * 1024 * 1024) == 0);
		close(fd);
	}
	CHECK(al_fmt(want, sizeof(want), "%s: larger than 1048576 bytes", path) == 0);
	CHECK_STR(lerr(path), want);
	unlink(path);

	path_in(path, sizeof(path), "empty.conf");
	CHECK(write_file(path, "", 0, 0600) == 0);
	CHECK_STR(lerr(path), "(loaded)");
	unlink(path);
}

/* Loading and freeing many credentials (each wiped) runs clean under ASan. */
static void test_wipe_on_free(void)
{
	char path[128];
	struct al_secrets *s = NULL;
	struct al_secret *e;

	path_in(path, sizeof(path), "wipe.conf");
	CHECK(write_file(path, good_text, strlen(good_text), 0600) == 0);
	CHECK(secrets_load(path, &s, err_, sizeof(err_)) == 0);
	CHECK(s && s->n == 1);
	if (s) {
		e = &s->v[0];
		CHECK(e->password && strlen(e->password) == 11);
	}
	secrets_free(s);
	secrets_free(NULL);
	unlink(path);
}

static void test_http_keys(void)
{
	struct al_secrets *s = pok("api header=\"X-Api-Key: s3cret value\"\n"
				   "kube bearer=eyJhbGciOi.x-y_z sslcert=/etc/k.crt sslkey=/etc/k.key\n");
	const struct al_secret *e;

	CHECK(s != NULL);
	if (!s)
		return;
	e = secrets_find(s, "api");
	CHECK(e && !e->user && e->header && strcmp(e->header, "X-Api-Key: s3cret value") == 0);
	e = secrets_find(s, "kube");
	CHECK(e && e->bearer && strcmp(e->bearer, "eyJhbGciOi.x-y_z") == 0 && e->sslcert);
	secrets_free(s);
	CHECK_STR(perr("a header=\"NoColon\"\n"),
		  "t:1: credential 'a': header= must be \"Name: value\" (a token, a colon, no control characters)");
	CHECK_STR(perr("a header=\"Bad Name: v\"\n"),
		  "t:1: credential 'a': header= must be \"Name: value\" (a token, a colon, no control characters)");
	CHECK_STR(perr("a bearer=\"two words\"\n"),
		  "t:1: credential 'a': bearer= must be one word without control characters");
	CHECK_STR(perr("a bearer=x header=\"A: b\"\n"),
		  "t:1: credential 'a': header= and bearer= together (choose one)");
}

int main(void)
{
	CHECK(al_fmt(dir_, sizeof(dir_), "/tmp/airlock-secrets-XXXXXX") == 0);
	if (!mkdtemp(dir_)) {
		printf("not ok - mkdtemp: %s\n", strerror(errno));
		return 1;
	}
	RUN(test_basic);
	RUN(test_empty);
	RUN(test_quoting);
	RUN(test_names);
	RUN(test_errors);
	RUN(test_errors_hide_values);
	RUN(test_many);
	RUN(test_file_ok);
	RUN(test_file_refused);
	RUN(test_file_content);
	RUN(test_wipe_on_free);
	RUN(test_http_keys);
	if (rmdir(dir_) < 0) {
		printf("not ok - cleanup %s: %s\n", dir_, strerror(errno));
		return 1;
	}
	TEST_EXIT();
}

/* airlockctl classify http (the proxy's own parser, offline) and the Airlock CA in the host trust store. */
#include "http.h"
#include "term.h"

#include <airlock/config.h>
#include <airlock/control.h>
#include <airlock/http.h>
#include <airlock/tls.h>

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define TRUST_DIR   "/usr/local/share/ca-certificates"
#define TRUST_FILE  TRUST_DIR "/airlock-ca.crt"
#define UPDATE_CA   "/usr/sbin/update-ca-certificates"
#define ETC_CERTS   "/etc/ssl/certs"
#define ETC_PEM_NAME "airlock-ca.pem"
#define HOOKS_DIR   "/etc/ca-certificates/update.d"
#define MAX_REQUEST (64u * 1024 * 1024)

extern char **environ;

void ctl_http_usage(FILE *f)
{
	fprintf(f,
		"  classify http [FILE]            the command a raw HTTP request yields (FILE or stdin);\n"
		"                                  exit 1 with the 400 reason if Airlock would refuse it\n"
		"  ca install                      add the Airlock CA to the host trust store\n"
		"                                  (" TRUST_FILE ", update-ca-certificates)\n"
		"  ca uninstall                    remove it again\n");
}

static uint8_t *read_all(FILE *f, size_t *len)
{
	size_t cap = 0, n = 0;
	uint8_t *buf = NULL;

	for (;;) {
		size_t got;

		if (n == cap) {
			uint8_t *nb;

			cap = cap ? cap * 2 : 65536;
			if (cap > MAX_REQUEST || !(nb = realloc(buf, cap))) {
				free(buf);
				return NULL;
			}
			buf = nb;
		}
		got = fread(buf + n, 1, cap - n, f);
		n += got;
		if (got == 0)
			break;
	}
	*len = n;
	return buf;
}

/* The answer Airlock would give instead of forwarding: "STATUS reason", or as JSON. */
static void refused(int want_json, int status, const char *why)
{
	struct al_buf b = { 0 };

	if (!want_json) {
		term_printf("%d %s\n", status, why);
		return;
	}
	al_buf_fmt(&b, "{\"ok\":false,\"status\":%d,\"reason\":", status);
	al_buf_json_str(&b, why, strlen(why));
	al_buf_add(&b, "}", 1);
	printf("%s\n", b.oom ? "{\"ok\":false}" : b.p);
	free(b.p);
}

static int classify(int argc, char **argv, int want_json)
{
	struct http_limits lim = { .max_body = MAX_REQUEST };
	struct http_command c;
	struct http_req *r = malloc(sizeof(*r));
	char err[256];
	uint8_t *buf;
	size_t len = 0;
	FILE *f = argc == 3 ? fopen(argv[2], "rb") : stdin;
	int rc;

	if (!r || !f) {
		term_fprintf(stderr, "airlockctl: cannot read %s: %s\n", argc == 3 ? argv[2] : "stdin",
			     strerror(errno));
		free(r);
		return 1;
	}
	buf = read_all(f, &len);
	if (f != stdin)
		fclose(f);
	if (!buf) {
		fprintf(stderr, "airlockctl: cannot read the request (larger than %u bytes?)\n", MAX_REQUEST);
		free(r);
		return 1;
	}
	http_req_init(r);
	rc = http_parse_request(r, buf, len, &lim);
	if (rc != HTTP_DONE) {
		const char *why = rc == HTTP_ERROR ? r->error : "incomplete request";
		int status = rc == HTTP_ERROR ? r->status : 400;

		refused(want_json, status, why);
		free(buf);
		free(r);
		return 1;
	}
	if (http_command_build(buf, r, &c, err, sizeof(err)) < 0) {
		refused(want_json, 400, err);
		free(buf);
		free(r);
		return 1;
	}
	if (want_json) {
		char *j = http_command_json(&c);

		printf("%s\n", j ? j : "{}");
		free(j);
	} else {
		/* the request's fields, which may be an agent's: term_printf */
		term_printf("method:   %s", c.method);
		for (size_t i = 0; i < c.n_overrides; i++)
			term_printf("%s%s", i ? ", " : " (override ", strcmp(c.overrides[i], AL_METHOD_ANY) == 0
								  ? "any method" : c.overrides[i]);
		term_printf("%s\nhost:     %s\npath:     %s", c.n_overrides ? ")" : "", c.host, c.path);
		/* rules match the path in normal form; say so when it is not what was sent */
		if (r->path.len && (strlen(c.path) != r->path.len ||
				    memcmp(c.path, buf + r->path.off, r->path.len) != 0)) {
			char *sent = strndup((const char *)buf + r->path.off, r->path.len);

			term_printf(" (sent as %s)", sent ? sent : "?");
			free(sent);
		}
		term_printf("\nquery:    %s\nkind:     %s\n", c.query, c.kind);
		term_printf("headers:  %s\n", c.headers_json);
		if (c.body_buffered)
			term_printf("body:     %llu bytes, sha256 %s\n", (unsigned long long)c.body_len, c.body_sha256);
		else
			printf("body:     %llu bytes, not buffered\n", (unsigned long long)c.body_len);
		if (c.is_k8s) {
			term_printf("k8s:      %s namespace=%s pod=%s container=%s\n", c.k8s.verb, c.k8s.ns,
				    c.k8s.pod, c.k8s.container[0] ? c.k8s.container : "(default)");
			for (size_t i = 0; i < c.k8s.argc; i++)
				term_printf("argv[%zu]:  %s\n", i, c.k8s.argv[i]);
		}
		term_printf("request:  %zu bytes, sha256 %s\nfingerprint: %s\n", r->total, c.request_sha256,
			    c.fingerprint);
		if (r->total < len)
			printf("(%zu more bytes follow: the next request on the connection)\n", len - r->total);
	}
	http_command_free(&c);
	free(buf);
	free(r);
	return 0;
}

static int run_update(void)
{
	char *const argv[] = { (char *)UPDATE_CA, NULL };
	pid_t pid;
	int st;

	if (posix_spawn(&pid, UPDATE_CA, NULL, NULL, argv, environ) != 0) {
		fprintf(stderr, "airlockctl: cannot run %s: %s\n", UPDATE_CA, strerror(errno));
		return -1;
	}
	if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "airlockctl: %s failed\n", UPDATE_CA);
		return -1;
	}
	return 0;
}

/* The CA certificate: from the running daemon, else from the default CA directory. */
static char *ca_pem(const char *sock)
{
	char err[256], path[512];
	json_t *req = json_pack("{s:s}", "cmd", "ca"), *resp;
	FILE *f;
	size_t n;
	char *pem;

	resp = control_call(sock, req, err, sizeof(err));
	json_decref(req);
	if (resp && json_is_true(json_object_get(resp, "ok")) &&
	    json_is_string(json_object_get(resp, "pem"))) {
		pem = strdup(json_string_value(json_object_get(resp, "pem")));
		json_decref(resp);
		return pem;
	}
	json_decref(resp);
	snprintf(path, sizeof(path), "%s/ca.crt", AL_DEFAULT_CA_DIR);
	f = fopen(path, "re");
	if (!f) {
		fprintf(stderr, "airlockctl: no airlockd to ask and cannot read %s: %s\n", path,
			strerror(errno));
		return NULL;
	}
	pem = (char *)read_all(f, &n);
	fclose(f);
	if (pem) {
		char *z = realloc(pem, n + 1);

		if (!z) {
			free(pem);
			return NULL;
		}
		pem = z;
		pem[n] = '\0';
	}
	return pem;
}

static int ca_install(const char *sock)
{
	char *pem = ca_pem(sock);
	char tmp[] = TRUST_DIR "/.airlock-ca.XXXXXX";
	int fd, ok;

	if (!pem)
		return 1;
	if (!strstr(pem, "-----BEGIN CERTIFICATE-----")) {
		fprintf(stderr, "airlockctl: the CA is not a PEM certificate\n");
		free(pem);
		return 1;
	}
	if (mkdir(TRUST_DIR, 0755) < 0 && errno != EEXIST) {
		fprintf(stderr, "airlockctl: %s: %s\n", TRUST_DIR, strerror(errno));
		free(pem);
		return 1;
	}
	fd = mkstemp(tmp);
	if (fd < 0) {
		fprintf(stderr, "airlockctl: %s: %s\n", TRUST_DIR, strerror(errno));
		free(pem);
		return 1;
	}
	ok = fchmod(fd, 0644) == 0 && write(fd, pem, strlen(pem)) == (ssize_t)strlen(pem) &&
	     fsync(fd) == 0;
	ok = close(fd) == 0 && ok && rename(tmp, TRUST_FILE) == 0;
	free(pem);
	if (!ok) {
		fprintf(stderr, "airlockctl: writing %s: %s\n", TRUST_FILE, strerror(errno));
		unlink(tmp);
		return 1;
	}
	if (run_update() < 0)
		return 1;
	printf("installed the Airlock CA as %s (system trust store updated)\n", TRUST_FILE);
	return 0;
}

/* The links update-ca-certificates made for our file: airlock-ca.pem and its hash links. */
static void remove_links(void)
{
	char target[PATH_MAX];
	DIR *d = opendir(ETC_CERTS);
	struct dirent *e;
	ssize_t n;

	if (!d)
		return;
	while ((e = readdir(d)) != NULL) {
		char path[PATH_MAX];

		if (snprintf(path, sizeof(path), "%s/%s", ETC_CERTS, e->d_name) >= (int)sizeof(path))
			continue;
		n = readlink(path, target, sizeof(target) - 1);
		if (n <= 0)
			continue;
		target[n] = '\0';
		if (strcmp(target, TRUST_FILE) == 0 || strcmp(target, ETC_PEM_NAME) == 0 ||
		    strcmp(target, ETC_CERTS "/" ETC_PEM_NAME) == 0)
			unlink(path);
	}
	closedir(d);
}

/* What update-ca-certificates tells its hooks (the Java keystore) about a removed CA; it
 * says nothing itself when a local certificate goes away. */
static void run_hooks_removed(void)
{
	DIR *d = opendir(HOOKS_DIR);
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d)) != NULL) {
		char path[PATH_MAX], *const argv[] = { path, NULL };
		posix_spawn_file_actions_t fa;
		int pfd[2], st;
		pid_t pid;

		if (e->d_name[0] == '.' ||
		    snprintf(path, sizeof(path), "%s/%s", HOOKS_DIR, e->d_name) >= (int)sizeof(path) ||
		    access(path, X_OK) != 0 || pipe(pfd) < 0)
			continue;
		posix_spawn_file_actions_init(&fa);
		posix_spawn_file_actions_adddup2(&fa, pfd[0], 0);
		posix_spawn_file_actions_addclose(&fa, pfd[1]);
		if (posix_spawn(&pid, path, &fa, NULL, argv, environ) == 0) {
			static const char line[] = "-" ETC_CERTS "/" ETC_PEM_NAME "\n";

			close(pfd[0]);
			if (write(pfd[1], line, sizeof(line) - 1) < 0)
				fprintf(stderr, "airlockctl: %s: %s\n", path, strerror(errno));
			close(pfd[1]);
			(void)waitpid(pid, &st, 0);
		} else {
			close(pfd[0]);
			close(pfd[1]);
		}
		posix_spawn_file_actions_destroy(&fa);
	}
	closedir(d);
}

static int ca_uninstall(void)
{
	if (unlink(TRUST_FILE) < 0) {
		if (errno == ENOENT) {
			printf("the Airlock CA is not installed (%s)\n", TRUST_FILE);
			return 0;
		}
		fprintf(stderr, "airlockctl: %s: %s\n", TRUST_FILE, strerror(errno));
		return 1;
	}
	remove_links();
	if (run_update() < 0)
		return 1;
	run_hooks_removed();
	printf("removed %s (system trust store updated)\n", TRUST_FILE);
	return 0;
}

int ctl_http_command(const char *control_sock, const char *cmd, int argc, char **argv, int want_json)
{
	if (strcmp(cmd, "classify") == 0 && argc >= 2 && strcmp(argv[1], "http") == 0) {
		if (argc > 3) {
			ctl_http_usage(stderr);
			return 2;
		}
		return classify(argc, argv, want_json);
	}
	if (strcmp(cmd, "ca") == 0 && argc == 2 && strcmp(argv[1], "install") == 0)
		return ca_install(control_sock);
	if (strcmp(cmd, "ca") == 0 && argc == 2 && strcmp(argv[1], "uninstall") == 0)
		return ca_uninstall();
	return -1;
}

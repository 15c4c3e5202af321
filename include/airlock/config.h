/* airlockd's configuration: the file format, its parser, and resource matching. */
#ifndef AIRLOCK_CONFIG_H
#define AIRLOCK_CONFIG_H

#include <stdint.h>
#include <stddef.h>
#include <airlock/common.h>
#include <airlock/bpf_abi.h>

#define AL_DEFAULT_CONFIG_PATH "/etc/airlock/airlock.conf"
#define AL_NAME_MAX 64

enum al_proto {
	AL_PROTO_TCP = 0,       /* relay bytes as they are */
	AL_PROTO_POSTGRES = 1,  /* terminate PostgreSQL, classify every statement */
	AL_PROTO_HTTPS = 2,     /* terminate TLS, decide every HTTP/1.1 request */
};

enum al_upstream_tls {
	AL_UPSTREAM_TLS_DISABLE = 0,
	AL_UPSTREAM_TLS_REQUIRE = 1,     /* encrypted, peer not checked (sslmode=require) */
	AL_UPSTREAM_TLS_VERIFY_FULL = 2, /* chain and host name checked */
};

/* The upstream login methods a postgres resource answers with its stored password (bits). */
enum {
	AL_UPSTREAM_AUTH_SCRAM = 1,     /* SCRAM-SHA-256: the server proves it knows the password */
	AL_UPSTREAM_AUTH_MD5 = 2,       /* md5: a hash that logs in as well as the password does */
	AL_UPSTREAM_AUTH_PASSWORD = 4,  /* the password itself */
};

enum al_action {
	AL_ACTION_DENY = 0,
	AL_ACTION_ALLOW = 1,
	AL_ACTION_REVIEW = 2,   /* hold the command until reviewers approve it */
};

/* One `rule` line of a resource: every condition given must hold. */
struct al_rule {
	int allow;              /* enum al_action */
	/* identity conditions */
	char *cgroup_glob;      /* fnmatch on the agent's cgroup path */
	long uid;               /* -1: any */
	char *exe_glob;
	/* review */
	char **approvers;       /* groups that may approve (any of them); none: any reviewer */
	size_t n_approvers;
	unsigned int approvals; /* distinct people needed */
	unsigned int review_timeout_ms;
	unsigned int max_grant_s; /* longest approve-for-a-window allowed; 0: no grants */
	uint32_t kinds;         /* bit per enum pg_kind; 0 = any kind (al_subject.kinds: how) */
	char **relations;       /* [catalog.][schema.]name as SQL writes it (config.c relation_matches) */
	size_t n_relations;
	int unbounded_write;    /* only UPDATE/DELETE without WHERE */
	char **fingerprints;    /* any of these statement fingerprints (airlockctl classify pg) */
	size_t n_fingerprints;
	/* https */
	char **methods;         /* any of these (exact, upper case) */
	size_t n_methods;
	char **paths;           /* any of these globs (fnmatch, '*' crosses '/') */
	size_t n_paths;
	int exec;               /* only Kubernetes exec and attach */
	int line;
	char text[160];         /* the rule as written, for messages and audit */
};

enum al_default_action {
	AL_DEFAULT_RELAY = 0,   /* destinations no resource names are relayed */
	AL_DEFAULT_DENY = 1,    /* ... or closed with reason policy_deny */
};

/* An address block over the 128-bit (v4-mapped for IPv4) form. */
struct al_cidr {
	struct al_addr addr;    /* network address, host bits cleared */
	uint8_t prefix;         /* 0..128; an IPv4 /24 is stored as /120 */
};

struct al_resource {
	char name[AL_NAME_MAX];
	struct al_cidr *nets;   /* addresses, CIDRs and resolved host names */
	size_t n_nets;
	char **hosts;           /* host names as written, for display */
	size_t n_hosts;
	uint16_t *ports;        /* at least one */
	size_t n_ports;
	enum al_proto proto;
	int line;               /* where it was declared */
	/* postgres */
	enum al_upstream_tls upstream_tls;
	char *upstream_ca;      /* CA file for verify-full; NULL: system roots */
	char *tls_name;         /* name on the minted leaf and checked upstream */
	char *credential;       /* key into the secrets file */
	/* https */
	char **sni;             /* `host NAME...`: server names (globs) this resource answers; none: any */
	size_t n_sni;
	int upstream_tls_line;  /* where upstream_tls was given; 0: the protocol's default */
	unsigned upstream_auth; /* AL_UPSTREAM_AUTH_* bits (postgres); by default SCRAM, and md5 and
				 * password too with upstream_tls verify-full */
	struct al_rule *rules;  /* first match decides; none matches: allow */
	size_t n_rules;
};

struct al_config {
	char *source;           /* file path, or "<embedded>" */
	uint16_t steer_port;
	char *control_socket;
	char *review_socket;    /* reviewers' socket (any local user; each call authorised) */
	char *store_path;
	char *pin_root;
	enum al_default_action default_action;
	unsigned int connect_timeout_ms;
	unsigned int max_sessions;
	unsigned int max_sessions_per_agent; /* of them from one agent (cgroup, or pinned interface);
					      * 0: not set (config_sessions_per_agent) */
	size_t relay_buffer;    /* bytes buffered per direction before backpressure */
	struct al_resource *resources;
	size_t n_resources;
	/* DNS resolvers pinned agents may use (UDP/53). Unless `resolver` is
	 * given, the daemon takes the nameservers of /etc/resolv.conf. */
	struct al_addr resolvers[AL_RESOLVERS_MAX];
	size_t n_resolvers;
	int resolvers_set;
	char *secrets_path;     /* upstream credentials (root-only file) */
	char *review_hook;      /* run with each new review request as JSON on stdin; NULL: none */
	char *review_webhook;   /* http(s) URL each new request is POSTed to; NULL: none */
	char *review_webhook_secret; /* file with the HMAC key for X-Airlock-Signature */
	char *ca_dir;           /* the Airlock CA */
	size_t pg_max_message;  /* longest PostgreSQL message accepted from an agent */
	unsigned int pg_login_timeout_ms; /* from accept to the session ready (agent startup and
					   * upstream login) */
	size_t http_max_body;   /* request bodies up to this are held for review and hashed */
	unsigned int http_head_timeout_ms; /* a request head arrives whole within this of its first byte */
	size_t http_body_min_rate;      /* bytes/s a request body comes at, after that much grace; 0: any */
	unsigned int http_response_timeout_ms; /* from a request's last byte sent upstream to its
					 * response's head; 0: none */
	/* Agents behind pinned interfaces (network namespaces, containers). */
	uint16_t tproxy_port;   /* TPROXY listener on 127.0.0.1 and ::1 */
	uint32_t tproxy_mark;   /* fwmark of TPROXYed packets */
	uint32_t tproxy_table;  /* routing table holding the local default route */
	char *nft_table;        /* nftables table, family inet */
	/* The audit store and session recordings. */
	uint64_t store_max_size;        /* bytes in use; 0: unlimited */
	int store_full_rotate;          /* at the cap: 0 refuse new sessions, 1 rotate to an archive */
	size_t record_limit;            /* bytes of recording per session; 0: none */
	uint64_t record_retention_s;    /* recordings older are deleted; 0: kept */
	unsigned int commit_interval_ms; /* under load, audit rows commit at most this often */
	/* The review console (userspace/console). */
	int console_enabled;    /* console_listen off: 0 */
	struct al_addr console_addr;
	uint16_t console_port;
	int console_tls;        /* HTTPS: console_cert/console_key, else a leaf from the Airlock CA */
	char *console_cert, *console_key;
	uint64_t console_idle_s;        /* a console login ends after this long without a request */
	uint64_t console_session_max_s; /* and this long after it began, in any case */
	uint64_t console_head_s;        /* a console connection's request head is due within this of
					 * its opening or its last answer (an idle one closes then) */
};

/* Parse `text` (named `source` in messages). On error returns -1 and writes
 * "source:line: problem" to err. Host names are resolved here. */
int config_parse(const char *source, const char *text, struct al_config **out,
		 char *err, size_t errlen) AL_MUST;
int config_load_file(const char *path, struct al_config **out, char *err, size_t errlen) AL_MUST;
/* The configuration compiled into the binary (policy/airlock.conf). */
int config_load_default(struct al_config **out, char *err, size_t errlen) AL_MUST;
void config_free(struct al_config *c);

/*
 * The sessions one agent may hold at once when airlockd takes cap sessions in all (max_sessions,
 * or fewer where the file descriptor limit allows fewer): max_sessions_per_agent if set, else
 * half of cap, at least 1. A fixed default did nothing at or below it, so one agent could take
 * every session.
 */
unsigned int config_sessions_per_agent(const struct al_config *c, uint64_t cap);

/* 1 if r's ports contain port and its nets contain dst. */
int config_resource_serves(const struct al_resource *r, const struct al_addr *dst, uint16_t port);
/* First resource (in file order) whose nets contain dst and ports contain port; NULL if none. */
const struct al_resource *config_match(const struct al_config *c, const struct al_addr *dst,
				       uint16_t port);
int al_cidr_contains(const struct al_cidr *net, const struct al_addr *a);
/* What a rule is matched against: one command from one agent. */
struct al_subject {
	int kind;                       /* enum pg_kind */
	unsigned kinds;                 /* every kind it is (pg_stmt.kinds); 0: 1u << kind */
	const char *const *relations;
	size_t n_relations;
	int unbounded_write;
	const char *fingerprint;        /* the statement's (postgres) */
	const char *cgroup_path;
	long uid;                       /* -1: not known (an agent behind a pinned interface) */
	const char *exe;
	/* https (NULL / 0 for other protocols) */
	const char *method;
	const char *path;
	int k8s_exec;                   /* a Kubernetes exec or attach */
};
/*
 * The https resource that takes a TLS connection to dst:port with server name sni: first (the
 * one the connection was matched to) if it answers sni, else the first https resource on that
 * address and port whose host list answers it (a resource without a host list answers any
 * name; an empty sni matches only those). NULL if none; dst NULL: first or nothing. The proxy
 * picks with it, and airlockctl policy test re-decides recorded requests with it.
 */
const struct al_resource *config_https_resource(const struct al_config *cfg, const struct al_resource *first,
						const struct al_addr *dst, uint16_t port, const char *sni);
/* A subject method that stands for every method (an HTTP request whose body may name one
 * Airlock could not read): config_decide gives the strictest rule any method would meet. */
#define AL_METHOD_ANY "*"
/* The first rule of the resource that matches; NULL: none (allowed). */
const struct al_rule *config_decide(const struct al_resource *res, const struct al_subject *s);
/*
 * The rule that decides a classified PostgreSQL statement (pg.h) from an agent (who: its
 * cgroup_path, uid and exe; its other fields are not read): config_unsafe_setting_rule for
 * one that changes how the server reads the SQL after it (unsafe_setting), whatever the rules
 * say, else config_decide on every kind it is (kinds), its relations, unbounded_write and
 * fingerprint. The proxy decides each statement with it, and airlockctl policy test re-decides
 * recorded ones with it.
 */
struct pg_stmt;
const struct al_rule *config_decide_stmt(const struct al_resource *res, const struct pg_stmt *st,
					 const struct al_subject *who);
extern const struct al_rule config_unsafe_setting_rule;
/*
 * The rule that decides a request that may run as s->method or as any of methods[0..n) (an
 * HTTP request's method overrides, which servers may take instead): the strictest of their
 * decisions (deny, then review, then allow); among equals s->method's, then the first's.
 */
const struct al_rule *config_decide_methods(const struct al_resource *res, const struct al_subject *s,
					    const char *const *methods, size_t n);
const char *config_action_name(int action);

/* 1 if the rule's identity conditions (cgroup, uid, exe) hold for this agent. A cgroup or exe
 * that could not be read (NULL), or a uid not known (-1), meets a deny or review rule's
 * condition, not an allow rule's. */
int config_rule_identity_matches(const struct al_rule *r, const char *cgroup_path, long uid,
				 const char *exe);
const char *config_proto_name(enum al_proto p);
/* Nameservers listed in a resolv.conf; returns how many (at most max) or -1. */
int config_system_resolvers(const char *resolv_conf, struct al_addr *out, size_t max);

extern const char al_default_conf[];
extern const size_t al_default_conf_len;

#endif

/* `airlockctl policy test`: what a candidate policy would have decided for recorded statements and HTTP requests. */
#ifndef AIRLOCKD_POLICY_TEST_H
#define AIRLOCKD_POLICY_TEST_H

#include <jansson.h>
#include <airlock/store.h>

/* files: candidate configuration files, read as if each were included from
 * one file. Returns {"ok":true,"checked":N,"checked_statements":S,"checked_http":H,
 * "changes":[...]} or an error; a change names its "statement" or its "http_request". */
json_t *policy_test(struct store *st, json_t *files, int64_t since_us);

#endif

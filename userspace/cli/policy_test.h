/* `airlockctl policy test`: what a candidate policy would have decided for recorded statements and HTTP requests. */
#ifndef AIRLOCKCTL_POLICY_TEST_H
#define AIRLOCKCTL_POLICY_TEST_H

#include <jansson.h>
#include <airlock/store.h>

/* files: candidate configuration files, read as if each were included from
 * one file; the recorded commands since since_us are read with r (the store file,
 * read-only: the daemon goes on undisturbed). Returns {"ok":true,"checked":N,
 * "checked_statements":S,"checked_http":H,"changes":[...]} or {"ok":false,"error":...};
 * a change names its "statement" or its "http_request". */
json_t *policy_test(struct store_reader *r, json_t *files, int64_t since_us);

#endif

/* Unit tests for reviewer password hashing. */
#include <airlock/password.h>

#include "harness.h"

static void test_round_trip(void)
{
	char h1[256], h2[256];

	CHECK(al_password_hash("correct horse", h1, sizeof(h1)) == 0);
	CHECK(al_password_hash("correct horse", h2, sizeof(h2)) == 0);
	CHECK(strncmp(h1, "pbkdf2-sha256$210000$", 21) == 0);
	CHECK(strcmp(h1, h2) != 0); /* salted */
	CHECK(al_password_verify("correct horse", h1) == 1);
	CHECK(al_password_verify("correct horse", h2) == 1);
	CHECK(al_password_verify("correct hors", h1) == 0);
	CHECK(al_password_verify("", h1) == 0);
}

static void test_malformed(void)
{
	CHECK(al_password_verify("x", "") == -1);
	CHECK(al_password_verify("x", "md5$abc") == -1);
	CHECK(al_password_verify("x", "pbkdf2-sha256$10$c2FsdA==$aGFzaA==") == -1);
	CHECK(al_password_verify("x", "pbkdf2-sha256$210000$c2FsdA==") == -1);
	CHECK(al_password_verify("x", "pbkdf2-sha256$210000$$") == -1);
}

int main(void)
{
	RUN(test_round_trip);
	RUN(test_malformed);
	TEST_EXIT();
}

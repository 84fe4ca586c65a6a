/* SPDX-License-Identifier: MIT */
/*
 * test_errors.c - tests of runtime/error.c: co_strerror and co_errname for
 * every code of CO_ERRNO_MAP (neco's test_errors.c walks its codes the same
 * way).
 *
 * Scenario groups:
 *   1. Codes         every CO_E<name> is the negative of <name> from
 *                    <errno.h> and of the value in the map; no two codes
 *                    share a value.
 *   2. Messages      co_strerror gives every code a non-empty message, the
 *                    map's own, distinct from every other code's.
 *   3. Names         co_errname returns the name of every code ("EINVAL"),
 *                    and "OK" for 0.
 *   4. Unknown codes co_errname says "UNKNOWN"; co_strerror still returns a
 *                    non-empty message (libc's for a plain -errno) and never
 *                    NULL, for positive, huge and INT_MIN codes too.
 */
#include <limits.h>

#include "test_util.h"

struct code {
	int code;          /* CO_E<name> */
	int value;         /* the map's errno value */
	int sys;           /* <errno.h>'s E<name> */
	const char *name;  /* "E<name>" */
	const char *msg;   /* the map's message */
};

static const struct code codes[] = {
#define XX(name, value, msg) {CO_##name, value, name, #name, msg},
	CO_ERRNO_MAP(XX)
#undef XX
};
#define NCODES (sizeof(codes) / sizeof(codes[0]))

/* ------------------------------------------------------------------------
 * 1. Codes
 * ---------------------------------------------------------------------- */

static void test_errors_codes_match_errno(void **state)
{
	(void)state;
	assert_true(NCODES >= 20);
	for (size_t i = 0; i < NCODES; i++) {
		assert_true(codes[i].code < 0);
		assert_int_equal(codes[i].code, -codes[i].value);
		if (codes[i].code != -codes[i].sys)
			fail_msg("CO_%s is %d, want -%d", codes[i].name,
				 codes[i].code, codes[i].sys);
	}
	/* The ones API.md names. */
	assert_int_equal(CO_EINVAL, -EINVAL);
	assert_int_equal(CO_ETIMEDOUT, -ETIMEDOUT);
	assert_int_equal(CO_ECANCELED, -ECANCELED);
	assert_int_equal(CO_EPIPE, -EPIPE);
	assert_int_equal(CO_EBUSY, -EBUSY);
	assert_int_equal(CO_EPERM, -EPERM);
}

static void test_errors_codes_distinct(void **state)
{
	(void)state;
	for (size_t i = 0; i < NCODES; i++)
		for (size_t j = i + 1; j < NCODES; j++)
			if (codes[i].code == codes[j].code)
				fail_msg("%s and %s share %d", codes[i].name,
					 codes[j].name, codes[i].code);
}

/* ------------------------------------------------------------------------
 * 2. Messages
 * ---------------------------------------------------------------------- */

static void test_errors_strerror_every_code(void **state)
{
	(void)state;
	for (size_t i = 0; i < NCODES; i++) {
		const char *m = co_strerror(codes[i].code);
		if (!m || !*m)
			fail_msg("co_strerror(CO_%s) is empty", codes[i].name);
		assert_string_equal(m, codes[i].msg);
	}
}

static void test_errors_strerror_distinct(void **state)
{
	(void)state;
	for (size_t i = 0; i < NCODES; i++)
		for (size_t j = i + 1; j < NCODES; j++)
			if (strcmp(co_strerror(codes[i].code),
				   co_strerror(codes[j].code)) == 0)
				fail_msg("CO_%s and CO_%s share the message "
					 "\"%s\"",
					 codes[i].name, codes[j].name,
					 co_strerror(codes[i].code));
}

static void test_errors_strerror_success(void **state)
{
	(void)state;
	const char *m = co_strerror(0);
	assert_non_null(m);
	assert_true(*m != '\0');
	for (size_t i = 0; i < NCODES; i++)
		assert_string_not_equal(m, co_strerror(codes[i].code));
}

/* ------------------------------------------------------------------------
 * 3. Names
 * ---------------------------------------------------------------------- */

static void test_errors_errname_round_trips(void **state)
{
	(void)state;
	for (size_t i = 0; i < NCODES; i++) {
		const char *n = co_errname(codes[i].code);
		assert_non_null(n);
		assert_string_equal(n, codes[i].name);
		/* And back: the name finds exactly this code. */
		size_t hits = 0;
		for (size_t j = 0; j < NCODES; j++)
			hits += strcmp(co_errname(codes[j].code), n) == 0;
		assert_int_equal(hits, 1);
	}
	assert_string_equal(co_errname(CO_EINVAL), "EINVAL");
	assert_string_equal(co_errname(CO_ETIMEDOUT), "ETIMEDOUT");
}

static void test_errors_errname_zero_is_ok(void **state)
{
	(void)state;
	assert_string_equal(co_errname(0), "OK");
}

/* ------------------------------------------------------------------------
 * 4. Unknown codes
 * ---------------------------------------------------------------------- */

static bool is_listed(int code)
{
	for (size_t i = 0; i < NCODES; i++)
		if (codes[i].code == code)
			return true;
	return false;
}

static void test_errors_unknown_codes(void **state)
{
	static const int unknown[] = {
		-ENOTDIR, -ESRCH, -EXDEV, -4095, -4096, -99999, INT_MIN,
		1, EINVAL, 4096, INT_MAX,
	};

	(void)state;
	for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
		int c = unknown[i];
		assert_false(is_listed(c));
		assert_string_equal(co_errname(c), "UNKNOWN");
		const char *m = co_strerror(c);
		if (!m || !*m)
			fail_msg("co_strerror(%d) is empty", c);
	}
}

static void test_errors_plain_errno_uses_libc_text(void **state)
{
	(void)state;
	assert_string_equal(co_strerror(-ENOTDIR), strerror(ENOTDIR));
	assert_string_equal(co_strerror(-ESRCH), strerror(ESRCH));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		/* 1. Codes */
		cmocka_unit_test(test_errors_codes_match_errno),
		cmocka_unit_test(test_errors_codes_distinct),
		/* 2. Messages */
		cmocka_unit_test(test_errors_strerror_every_code),
		cmocka_unit_test(test_errors_strerror_distinct),
		cmocka_unit_test(test_errors_strerror_success),
		/* 3. Names */
		cmocka_unit_test(test_errors_errname_round_trips),
		cmocka_unit_test(test_errors_errname_zero_is_ok),
		/* 4. Unknown codes */
		cmocka_unit_test(test_errors_unknown_codes),
		cmocka_unit_test(test_errors_plain_errno_uses_libc_text),
	};
	return cmocka_run_group_tests_name("runtime.errors", tests, NULL, NULL);
}

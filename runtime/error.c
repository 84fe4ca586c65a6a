/* SPDX-License-Identifier: MIT */
/*
 * error.c - co_strerror() and co_errname(), generated from CO_ERRNO_MAP in
 * copper.h so that a code, its name and its message are written once.
 */
#include <string.h>

#include "copper.h"

CO_EXTERN const char *co_strerror(int code)
{
	switch (code) {
	case 0:
		return "success";
#define CO_ERRNO_MSG(name, value, msg) \
	case CO_##name:                \
		return msg;
		CO_ERRNO_MAP(CO_ERRNO_MSG)
#undef CO_ERRNO_MSG
	default:
		/* A plain -errno that Copper does not list: libc names it.
		 * strerror's buffer is static for these known values. */
		if (code < 0 && code > -4096)
			return strerror(-code);
		return "unknown error";
	}
}

CO_EXTERN const char *co_errname(int code)
{
	switch (code) {
	case 0:
		return "OK";
#define CO_ERRNO_NAME(name, value, msg) \
	case CO_##name:                 \
		return #name;
		CO_ERRNO_MAP(CO_ERRNO_NAME)
#undef CO_ERRNO_NAME
	default:
		return "UNKNOWN";
	}
}

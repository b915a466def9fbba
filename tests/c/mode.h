/*
 * The run modes of the C stress programs, read from the environment:
 * LOCKFREE_LONG=1 (long runs) and LOCKFREE_EMULATED=1 (tests/cbuild.py sets
 * it for cross builds run under qemu user emulation: shorter runs, and no
 * timing bounds such as fairness or wake-up latency, which an emulator on
 * a loaded machine cannot be held to; every correctness invariant still
 * holds).
 */
#ifndef LF_TESTS_MODE_H
#define LF_TESTS_MODE_H

#include <stdlib.h>
#include <string.h>

static int __attribute__((unused)) env_is_1(const char *name)
{
	const char *v = getenv(name);

	return v && !strcmp(v, "1");
}

/* LOCKFREE_LONG=1: the long stress mode. */
static int __attribute__((unused)) long_mode(void)
{
	return env_is_1("LOCKFREE_LONG");
}

/* LOCKFREE_EMULATED=1: running under an emulator (see above). */
static int __attribute__((unused)) emulated(void)
{
	return env_is_1("LOCKFREE_EMULATED");
}

#endif /* LF_TESTS_MODE_H */

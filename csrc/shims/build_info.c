#include "build_info.h"
#include "arch/atomic.h"

const char *lf_build_atomics(void) { return LF_ATOMICS_IMPL; }

const char *lf_build_arch(void)
{
#if defined(__x86_64__)
	return "x86_64";
#elif defined(__aarch64__)
	return "aarch64";
#else
	return "unknown";
#endif
}

const char *lf_build_compiler(void) { return __VERSION__; }

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

void lf_noop0(void) {}
int64_t lf_noop1(void *p) { (void)p; return 0; }
int64_t lf_noop2(void *p, int64_t a) { (void)p; return a; }
int64_t lf_noop3(void *p, int64_t a, int64_t b) { (void)p; (void)a; return b; }

#include "noop.h"

void lf_noop0(void) {}
int64_t lf_noop1(void *p) { (void)p; return 0; }
int64_t lf_noop2(void *p, int64_t a) { (void)p; return a; }
int64_t lf_noop3(void *p, int64_t a, int64_t b) { (void)p; (void)a; return b; }

#include "lockwait.h"  /* csrc/shims/lockwait.h */

uint64_t lf_owner_self_id(void) { return lf_owner_self(); }

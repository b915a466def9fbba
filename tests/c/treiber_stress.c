/*
 * Tagged Treiber stack under contention: every thread pops two nodes A, B
 * and pushes them back A first (the pattern that makes ABA: another
 * thread's pop that read head = A, next = B can then swing the head to B,
 * which this thread still holds), many times.  With the 16-byte tagged CAS no node may be
 * lost or duplicated: at the end the stack holds each node exactly once.
 * (The plain index-only CAS can corrupt the stack here; it is the ABA demo,
 * not checked.)
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "treiber.h"

#define NODES 8  /* few nodes: pops and pushes collide often */

static struct lf_treiber *stack;
static int64_t iters;
static uint64_t empties[64];
static uint32_t go;

static void *worker(void *arg)
{
	int id = (int)(intptr_t)arg;

	while (!lf_load_acquire32(&go))
		lf_cpu_relax();
	for (int64_t i = 0; i < iters; i++) {
		uint64_t a = lf_treiber_pop(stack), b = lf_treiber_pop(stack);

		if (a == LF_TREIBER_NIL || b == LF_TREIBER_NIL)
			empties[id]++;
		if (a != LF_TREIBER_NIL)
			lf_treiber_push(stack, a);
		if (b != LF_TREIBER_NIL)
			lf_treiber_push(stack, b);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	int threads = argc > 1 ? atoi(argv[1]) : 4;
	const char *lng = getenv("LOCKFREE_LONG");
	pthread_t tid[64];
	uint64_t seen[NODES], count[NODES] = { 0 }, n;
	int ok = 1;

	if (threads < 1 || threads > 64)
		threads = 4;
	iters = lng && !strcmp(lng, "1") ? 5000000 : 200000;
	stack = aligned_alloc(16, (lf_treiber_size(NODES) + 15) & ~15ul);
	lf_treiber_init(stack, NODES, 1);
	for (uint64_t i = 0; i < NODES; i++)
		lf_treiber_push(stack, i);
	for (int t = 0; t < threads; t++)
		pthread_create(&tid[t], NULL, worker, (void *)(intptr_t)t);
	lf_store_release32(&go, 1);
	for (int t = 0; t < threads; t++)
		pthread_join(tid[t], NULL);

	n = lf_treiber_walk(stack, seen, NODES);
	for (uint64_t i = 0; i < n; i++)
		count[seen[i]]++;
	/* a corrupted stack can hold a cycle: walk stops at NODES entries */
	for (uint64_t i = 0; i < NODES; i++)
		ok &= count[i] == 1;
	printf("atomics=%s\n", LF_ATOMICS_IMPL);
	printf("threads=%d iters=%lld\n", threads, (long long)iters);
	printf("nodes_on_stack=%llu expected=%d\n", (unsigned long long)n, NODES);
	printf("tag=%llu\n", (unsigned long long)stack->head.hi);
	free(stack);
	if (!ok || n != NODES) {
		printf("treiber_stress: FAIL nodes lost or duplicated\n");
		return 1;
	}
	printf("treiber_stress: OK\n");
	return 0;
}

#include "demo.h"
#include "atomic.h"
#include "arch/atomic.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#define LF_DEMO_MAX_THREADS 64
#define LF_DEMO_MAX_BINS 64

struct demo {
	int64_t iters;
	uint32_t go;               /* 1: start, 2: abandon (a create failed) */
	volatile int64_t plain;
	lf_atomic_t atomic;
	int nbins;
	int64_t hist[LF_DEMO_MAX_THREADS][LF_DEMO_MAX_BINS];
	int64_t attempts[LF_DEMO_MAX_THREADS];
};

struct worker {
	struct demo *d;
	int id;
};

/* Workers wait here so they all start together and really contend. */
static int start_gate(struct demo *d)
{
	uint32_t go;

	/* Pairs with the release store in run(). */
	while (!(go = lf_load_acquire32(&d->go)))
		sched_yield();
	return go == 1;
}

static int run(int threads, struct demo *d, void *(*fn)(void *))
{
	pthread_t tid[LF_DEMO_MAX_THREADS];
	struct worker w[LF_DEMO_MAX_THREADS];
	int i, started = 0;

	if (threads < 1 || threads > LF_DEMO_MAX_THREADS || d->iters < 0)
		return -EINVAL;
	for (i = 0; i < threads; i++) {
		w[i] = (struct worker){ d, i };
		if (pthread_create(&tid[i], NULL, fn, &w[i]))
			break;
		started++;
	}
	lf_store_release32(&d->go, started == threads ? 1 : 2);
	for (i = 0; i < started; i++)
		pthread_join(tid[i], NULL);
	return started == threads ? 0 : -EAGAIN;
}

static void *plain_worker(void *arg)
{
	struct worker *w = arg;
	struct demo *d = w->d;

	if (!start_gate(d))
		return NULL;
	for (int64_t i = 0; i < d->iters; i++)
		d->plain = d->plain + 1;  /* load, add, store: not atomic */
	return NULL;
}

static void *atomic_worker(void *arg)
{
	struct worker *w = arg;
	struct demo *d = w->d;

	if (!start_gate(d))
		return NULL;
	for (int64_t i = 0; i < d->iters; i++)
		lf_atomic_fetch_add(&d->atomic, 1);
	return NULL;
}

/* Two phases, so the plain loop runs at full speed and threads overlap. */
int lf_demo_lost_update(int threads, int64_t iters, int64_t *out)
{
	struct demo *d = calloc(1, sizeof(*d));
	int err;

	if (!d)
		return -ENOMEM;
	d->iters = iters;
	err = run(threads, d, plain_worker);
	if (!err) {
		d->go = 0;
		err = run(threads, d, atomic_worker);
	}
	out[0] = d->plain;
	out[1] = lf_atomic_load(&d->atomic);
	free(d);
	return err;
}

static void *cas_retry_worker(void *arg)
{
	struct worker *w = arg;
	struct demo *d = w->d;
	int64_t *hist = d->hist[w->id];

	if (!start_gate(d))
		return NULL;
	for (int64_t i = 0; i < d->iters; i++) {
		int64_t old = lf_atomic_load(&d->atomic), seen;
		int retries = 0;

		/* do { new = old + 1; } while (!CAS(&counter, old, new)); */
		while ((seen = lf_atomic_cmpxchg(&d->atomic, old, old + 1)) != old) {
			old = seen;
			retries++;
		}
		hist[retries < d->nbins - 1 ? retries : d->nbins - 1]++;
		d->attempts[w->id] += retries + 1;
	}
	return NULL;
}

int lf_demo_cas_retry(int threads, int64_t iters, int64_t *hist, int nbins,
		      int64_t *out)
{
	struct demo *d;
	int err;

	if (nbins < 1 || nbins > LF_DEMO_MAX_BINS)
		return -EINVAL;
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->iters = iters;
	d->nbins = nbins;
	err = run(threads, d, cas_retry_worker);
	memset(hist, 0, (size_t)nbins * sizeof(*hist));
	out[1] = 0;
	for (int t = 0; t < threads && !err; t++) {
		for (int b = 0; b < nbins; b++)
			hist[b] += d->hist[t][b];
		out[1] += d->attempts[t];
	}
	out[0] = lf_atomic_load(&d->atomic);
	free(d);
	return err;
}

/*
 * call_rcu (lf_rcu_call): a per-process reclaimer thread that batches
 * callbacks and runs each batch after one grace period (rcu.h).
 */
#include "rcu.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

/* ------------------------------------------------------------- call_rcu */

struct lf_rcu_cbnode {
	struct lf_rcu_cbnode *next;
	lf_rcu_cb fn;
	void *arg;
};

struct lf_rcu_reclaimer {
	struct lf_rcu_dh h;	/* a copy: the caller's handle may go */
	pthread_mutex_t lock;
	pthread_cond_t work;	/* queue non-empty, poll request, or stop */
	pthread_cond_t done;	/* completed advanced */
	struct lf_rcu_cbnode *head, **tail;
	uint64_t queued;	/* callbacks ever queued */
	uint64_t completed;	/* callbacks ever run */
	int poll;		/* a start_poll wants a grace period */
	int stop;
	pthread_t thread;
};

static void *reclaimer_main(void *arg)
{
	struct lf_rcu_reclaimer *rc = arg;

	pthread_mutex_lock(&rc->lock);
	for (;;) {
		struct lf_rcu_cbnode *batch, *next;
		uint64_t n = 0;

		while (!rc->head && !rc->poll && !rc->stop)
			pthread_cond_wait(&rc->work, &rc->lock);
		if (!rc->head && !rc->poll)
			break;	/* stop, and nothing left to do */
		batch = rc->head;
		rc->head = NULL;
		rc->tail = &rc->head;
		rc->poll = 0;
		pthread_mutex_unlock(&rc->lock);

		/* One grace period for the whole batch.  This thread is never
		 * a reader, so LF_EDEADLK cannot happen; there is no timeout. */
		lf_rcu_synchronize(&rc->h);
		for (; batch; batch = next, n++) {
			next = batch->next;
			batch->fn(batch->arg);
			free(batch);
		}

		pthread_mutex_lock(&rc->lock);
		rc->completed += n;
		pthread_cond_broadcast(&rc->done);
	}
	pthread_mutex_unlock(&rc->lock);
	return NULL;
}

struct lf_rcu_reclaimer *lf_rcu_reclaimer_new(const struct lf_rcu_dh *h)
{
	struct lf_rcu_reclaimer *rc = calloc(1, sizeof(*rc));

	if (!rc)
		return NULL;
	rc->h = *h;
	rc->tail = &rc->head;
	pthread_mutex_init(&rc->lock, NULL);
	pthread_cond_init(&rc->work, NULL);
	pthread_cond_init(&rc->done, NULL);
	if (pthread_create(&rc->thread, NULL, reclaimer_main, rc)) {
		pthread_cond_destroy(&rc->done);
		pthread_cond_destroy(&rc->work);
		pthread_mutex_destroy(&rc->lock);
		free(rc);
		return NULL;
	}
	return rc;
}

int lf_rcu_call(struct lf_rcu_reclaimer *rc, lf_rcu_cb fn, void *arg)
{
	struct lf_rcu_cbnode *node = malloc(sizeof(*node));

	if (!node)
		return LF_ENOMEM;
	node->next = NULL;
	node->fn = fn;
	node->arg = arg;
	pthread_mutex_lock(&rc->lock);
	*rc->tail = node;
	rc->tail = &node->next;
	rc->queued++;
	pthread_cond_signal(&rc->work);
	pthread_mutex_unlock(&rc->lock);
	return 0;
}

void lf_rcu_barrier(struct lf_rcu_reclaimer *rc)
{
	uint64_t target;

	pthread_mutex_lock(&rc->lock);
	target = rc->queued;
	/* Callbacks run in queue order, so completed reaching the count
	 * queued before the call means all of those ran. */
	while (rc->completed < target)
		pthread_cond_wait(&rc->done, &rc->lock);
	pthread_mutex_unlock(&rc->lock);
}

uint64_t lf_rcu_reclaimer_start_poll(struct lf_rcu_reclaimer *rc)
{
	uint64_t cookie = lf_rcu_start_poll(&rc->h);

	pthread_mutex_lock(&rc->lock);
	rc->poll = 1;
	pthread_cond_signal(&rc->work);
	pthread_mutex_unlock(&rc->lock);
	return cookie;
}

void lf_rcu_reclaimer_free(struct lf_rcu_reclaimer *rc)
{
	if (!rc)
		return;
	pthread_mutex_lock(&rc->lock);
	rc->stop = 1;
	pthread_cond_signal(&rc->work);
	pthread_mutex_unlock(&rc->lock);
	pthread_join(rc->thread, NULL);	/* it drains the queue first */
	pthread_cond_destroy(&rc->done);
	pthread_cond_destroy(&rc->work);
	pthread_mutex_destroy(&rc->lock);
	free(rc);
}

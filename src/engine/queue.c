/* Lanes: items of one realize on several devices at once (see queue.h).
 *
 *   caller: job → each helper lane → run lane 0's items → wait for the helpers
 *   lane:   for its items in order: wait for the deps' done flags → run → done, broadcast
 *
 * One mutex and condition per job guard the done flags and the first failure: items are
 * kernels or copies (tens of microseconds and up), so a wake-up per item costs little. */
#define _GNU_SOURCE
#include "queue.h"
#include "core/error.h"
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct job {
  int n;
  const int *lane;
  const int (*dep)[2];
  cg_status (*run)(void *, int);
  void *ctx;
  pthread_mutex_t m;
  pthread_cond_t cv;
  unsigned char *done; /* per item (under m) */
  int lanes_left;      /* helper lanes still running (under m) */
  cg_status st;        /* the first failure (under m) */
  char msg[1024];
} job;

static void run_lane(job *j, int me) {
  for (int i = 0; i < j->n; i++) {
    if (j->lane[i] != me) continue;
    pthread_mutex_lock(&j->m);
    for (int d = 0; d < 2; d++)
      while (j->dep[i][d] >= 0 && !j->done[j->dep[i][d]] && j->st == CG_OK) pthread_cond_wait(&j->cv, &j->m);
    bool go = j->st == CG_OK;
    pthread_mutex_unlock(&j->m);
    if (!go) return;
    cg_status st = j->run(j->ctx, i);
    pthread_mutex_lock(&j->m);
    j->done[i] = 1;
    if (st != CG_OK && j->st == CG_OK) {
      j->st = st;
      snprintf(j->msg, sizeof j->msg, "%s", cg_last_error());
    }
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->m);
    if (st != CG_OK) return;
  }
}

/* ---- helper threads: lane k (k >= 1) is helpers[k], made on first use ---------------- */

typedef struct {
  pthread_t tid;
  pthread_mutex_t m;
  pthread_cond_t cv;
  job *j; /* the job to run (under m); NULL: idle */
  int lane;
  bool started;
} helper;

static helper helpers[QUEUE_MAX_LANES];
static pthread_mutex_t run_lock = PTHREAD_MUTEX_INITIALIZER; /* one multi-lane realize at a time */
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

static void *helper_main(void *arg) {
  helper *h = arg;
  for (;;) {
    pthread_mutex_lock(&h->m);
    while (!h->j) pthread_cond_wait(&h->cv, &h->m);
    job *j = h->j;
    pthread_mutex_unlock(&h->m);
    run_lane(j, h->lane);
    pthread_mutex_lock(&h->m);
    h->j = NULL; /* idle again before the caller can see this lane finished */
    pthread_mutex_unlock(&h->m);
    pthread_mutex_lock(&j->m);
    j->lanes_left--;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->m); /* j may be gone after this */
  }
  return NULL;
}

/* A forked child has none of the parent's threads: it makes its own when it needs them. */
static void after_fork_child(void) {
  pthread_mutex_init(&run_lock, NULL);
  for (int k = 0; k < QUEUE_MAX_LANES; k++) helpers[k].started = false;
}
static void set_fork_handler(void) { pthread_atfork(NULL, NULL, after_fork_child); }

static bool start_helper(int k) {
  helper *h = &helpers[k];
  if (h->started) return true;
  pthread_mutex_init(&h->m, NULL);
  pthread_cond_init(&h->cv, NULL);
  h->j = NULL, h->lane = k;
  /* no signals on engine threads: the host program's handlers run on its own */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  h->started = pthread_create(&h->tid, &attr, helper_main, h) == 0;
  pthread_attr_destroy(&attr);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  return h->started;
}

cg_status queue_run(int n, const int *lane, const int (*dep)[2], int nlanes, cg_status (*run)(void *ctx, int i), void *ctx) {
  if (nlanes < 1 || nlanes > QUEUE_MAX_LANES) return cg_fail(CG_ERR_INVALID, "queue: expected 1 to %d lanes, got %d", QUEUE_MAX_LANES, nlanes);
  pthread_once(&fork_once, set_fork_handler);
  pthread_mutex_lock(&run_lock);
  bool ok = true;
  for (int k = 1; k < nlanes && ok; k++) ok = start_helper(k);
  unsigned char *done = ok ? calloc((size_t)(n ? n : 1), 1) : NULL;
  if (!done) { /* no threads or no memory: the serial order is a valid order */
    pthread_mutex_unlock(&run_lock);
    cg_status st = CG_OK;
    for (int i = 0; i < n && st == CG_OK; i++) st = run(ctx, i);
    return st;
  }
  job j = {.n = n, .lane = lane, .dep = dep, .run = run, .ctx = ctx, .done = done, .lanes_left = nlanes - 1, .st = CG_OK};
  pthread_mutex_init(&j.m, NULL);
  pthread_cond_init(&j.cv, NULL);
  for (int k = 1; k < nlanes; k++) {
    helper *h = &helpers[k];
    pthread_mutex_lock(&h->m);
    h->j = &j;
    pthread_cond_signal(&h->cv);
    pthread_mutex_unlock(&h->m);
  }
  run_lane(&j, 0);
  pthread_mutex_lock(&j.m);
  while (j.lanes_left) pthread_cond_wait(&j.cv, &j.m);
  cg_status st = j.st;
  pthread_mutex_unlock(&j.m);
  pthread_cond_destroy(&j.cv);
  pthread_mutex_destroy(&j.m);
  free(done);
  pthread_mutex_unlock(&run_lock);
  if (st != CG_OK) cg_fail(st, "%s", j.msg);
  return st;
}

/* Lanes (engine/queue.h), also run under ThreadSanitizer (test.sh runs test_threads*):
 *   - items on two lanes run at the same time: each waits (up to 20 s) for the other to
 *     have started, which only happens if both run at once;
 *   - a fence holds an item until the item it depends on (another lane) has finished;
 *   - a lane runs its items in index order;
 *   - a failing item stops the items after it, and its status and message reach the caller;
 *   - a realize over three devices with copies between them, run concurrently 10 times,
 *     gives the serial order's result (CG_CONCURRENT=0) bit for bit. */
#include "check.h"
#include <cgrad.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include "core/error.h"
#include "engine/queue.h"

typedef struct {
  atomic_int arrived;
  atomic_int flag;
  atomic_int seq;         /* next sequence number */
  int order[16];          /* per item: when it ran (sequence number) */
  int fail_at;            /* item that fails (-1: none) */
  bool overlapped;
  bool fence_held;
} ctx_t;

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static cg_status run(void *p, int i) {
  ctx_t *c = p;
  c->order[i] = atomic_fetch_add(&c->seq, 1);
  if (i == c->fail_at) return cg_fail(CG_ERR_RUNTIME, "item %d failed on purpose", i);
  switch (i) {
  case 0: case 1: { /* the two meet: both must be running */
    atomic_fetch_add(&c->arrived, 1);
    for (int t = 0; t < 20000 && atomic_load(&c->arrived) < 2; t++) sleep_ms(1);
    if (i == 0) c->overlapped = atomic_load(&c->arrived) >= 2;
    break;
  }
  case 2: /* lane 1, slow; item 3 (lane 0) waits for it */
    sleep_ms(30);
    atomic_store(&c->flag, 1);
    break;
  case 3: c->fence_held = atomic_load(&c->flag) == 1; break;
  default: break;
  }
  return CG_OK;
}

static void test_queue(void) {
  enum { N = 8 };
  /* items 0, 3, 4, 6 on lane 0; 1, 2, 5, 7 on lane 1; item 3 after item 2, item 6 after 5 */
  static const int lane[N] = {0, 1, 1, 0, 0, 1, 0, 1};
  static const int dep[N][2] = {{-1, -1}, {-1, -1}, {-1, -1}, {2, -1}, {-1, -1}, {-1, -1}, {5, -1}, {-1, -1}};
  for (int round = 0; round < 3; round++) { /* the helper thread is reused */
    ctx_t c = {.fail_at = -1};
    CHECK(queue_run(N, lane, dep, 2, run, &c) == CG_OK, "run: %s", cg_last_error());
    CHECK(c.overlapped, "items of two lanes run at the same time");
    CHECK(c.fence_held, "item 3 waited for item 2 on the other lane");
    CHECK(c.order[6] > c.order[5], "item 6 after its fence");
    bool in_order = true;
    for (int i = 0; i < N; i++)
      for (int j = i + 1; j < N; j++)
        if (lane[i] == lane[j] && c.order[j] < c.order[i]) in_order = false;
    CHECK(in_order, "each lane in index order");
  }
  /* a failure on lane 1 (item 5): items after it on lane 1 never run, item 6 (fenced on 5)
   * never runs, and the caller gets the message */
  ctx_t c = {.fail_at = 5};
  for (int i = 0; i < N; i++) c.order[i] = -1;
  cg_status st = queue_run(N, lane, dep, 2, run, &c);
  CHECK(st == CG_ERR_RUNTIME && strstr(cg_last_error(), "item 5 failed on purpose"), "failure: %d %s", (int)st, cg_last_error());
  CHECK(c.order[6] == -1 && c.order[7] == -1, "nothing after the failure on its lane or behind its fence");
  CHECK(queue_run(1, lane, dep, 0, run, &c) == CG_ERR_INVALID, "0 lanes refused");
}

static float frand(void) { return (float)rand() / (float)RAND_MAX * 2.0f - 1.0f; }

/* y_d = relu(x_d @ w) on three devices, every y copied to CPU and summed: one realize. */
static void test_realize(void) {
  enum { M = 24, K = 32, N = 16, ND = 3, ROUNDS = 10 };
  static float hx[ND][M * K], hw[K * N], want[M * N], got[M * N];
  const char *devs[ND] = {"CPU", "CPU:1", "CPU:2"};
  for (int d = 0; d < ND; d++)
    for (int i = 0; i < M * K; i++) hx[d][i] = frand();
  for (int i = 0; i < K * N; i++) hw[i] = frand();
  for (int round = 0; round <= ROUNDS; round++) {
    cg_set_config("CG_CONCURRENT", round == 0 ? "0" : "1");
    cg_scope_begin();
    cg_tensor *w = cg_from_data(hw, CG_FLOAT32, (int64_t[]){K, N}, 2), *sum = NULL;
    for (int d = 0; d < ND; d++) {
      cg_tensor *x = cg_to(cg_from_data(hx[d], CG_FLOAT32, (int64_t[]){M, K}, 2), devs[d]);
      cg_tensor *y = cg_relu(cg_matmul(x, cg_to(w, devs[d])));
      cg_tensor *back = cg_to(y, "CPU");
      sum = sum ? cg_add(sum, back) : back;
    }
    CHECK(sum && cg_read(sum, CG_FLOAT32, round ? got : want, sizeof got) == CG_OK, "round %d: %s", round, cg_last_error());
    if (round) CHECK(!memcmp(got, want, sizeof got), "round %d: concurrent == serial, bit for bit", round);
    cg_scope_end();
  }
  cg_set_config("CG_CONCURRENT", NULL);
}

int main(void) {
  unsigned seed = (unsigned)time(NULL);
  srand(seed);
  printf("seed %u\n", seed);
  test_queue();
  test_realize();
  return test_summary();
}

/* A kernel for the thread tests: every chunk counts itself in c[0], records its thread in
 * who[], and waits (at most vars[1] s) until vars[0] chunks have arrived; c[1] counts the
 * chunks that saw all of them, so vars[0] chunks at once prove vars[0] threads ran. */
#ifndef CG_TESTS_MEET_KERNEL_H
#define CG_TESTS_MEET_KERNEL_H
static const char *MEET = "#include <stdint.h>\n"
                          "#include <pthread.h>\n"
                          "#include <sched.h>\n"
                          "#include <time.h>\n"
                          "static double now_s(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }\n"
                          "void meet(void **bufs, const int64_t *vars, int64_t lo, int64_t hi) {\n"
                          "  int64_t *c = bufs[0]; uint64_t *who = bufs[1];\n"
                          "  (void)lo, (void)hi;\n"
                          "  int64_t me = __atomic_fetch_add(&c[0], 1, __ATOMIC_SEQ_CST);\n"
                          "  if (me < 8) who[me] = (uint64_t)pthread_self();\n"
                          "  double t0 = now_s();\n"
                          "  while (__atomic_load_n(&c[0], __ATOMIC_SEQ_CST) < vars[0] && now_s() - t0 < (double)vars[1]) sched_yield();\n"
                          "  if (__atomic_load_n(&c[0], __ATOMIC_SEQ_CST) >= vars[0]) __atomic_fetch_add(&c[1], 1, __ATOMIC_SEQ_CST);\n"
                          "}\n";
#endif

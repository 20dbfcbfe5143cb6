/* Running one realize's items on several devices at once (ARCHITECTURE §8): one lane per
 * device, each a host thread that drives its device (a CPU instance's launch runs on that
 * instance's own thread pool, its caller taking a chunk), so the kernels of CPU and CPU:1
 * compute at the same time. Lane 0 is the calling thread; lanes 1.. are helper threads
 * the engine makes on first use and keeps (one job at a time on each).
 *
 * The order is the schedule's: a lane runs its items in index order, and an item starts
 * only after the items it depends on (on other lanes) have finished: the fences. The
 * engine makes an item depend on the last earlier item that touched each device it
 * touches (a copy touches two), so everything that reads or writes a device's memory runs
 * in the schedule's order on that device, and the results are those of the serial order,
 * bit for bit. */
#ifndef CG_ENGINE_QUEUE_H
#define CG_ENGINE_QUEUE_H
#include "cgrad.h"

enum { QUEUE_MAX_LANES = 16 };

/* Run items 0..n-1: item i on lane lane[i] (< nlanes <= QUEUE_MAX_LANES) once items
 * dep[i][0] and dep[i][1] (-1: none) have finished. run(ctx, i) runs one item and must
 * build no UOps (it runs on another thread). After a failure no further item starts; the
 * first failure's status is returned, its message recorded on the calling thread. */
cg_status queue_run(int n, const int *lane, const int (*dep)[2], int nlanes, cg_status (*run)(void *ctx, int i), void *ctx);

#endif

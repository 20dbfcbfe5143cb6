/* Sliding windows over the last n (1..3) dims, as convolutions and pools use them:
 * x (lead..., I1..In) -> (prod(lead), O1..On, K1..Kn), Oj = ceil((Ij - dj*(kj-1)) / sj).
 * Only movement ops: the windows fuse into whatever reduces them. */
#ifndef CG_NN_POOL_WINDOWS_H
#define CG_NN_POOL_WINDOWS_H
#include "cgrad.h"
cg_tensor *nn_pool_windows(cg_tensor *x, int n, const int64_t *k, const int64_t *s, const int64_t *d);
#endif

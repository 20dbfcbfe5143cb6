/* Fused (flash) attention, memory linear in the sequence length (flash.c). */
#ifndef CG_TENSOR_FLASH_H
#define CG_TENSOR_FLASH_H
#include "cgrad.h"

enum { FLASH_MASK_NONE, FLASH_MASK_BOOL, FLASH_MASK_ADD };

/* softmax(q k^T * scale + mask) v over blocks of `block` keys, with a custom backward;
 * causal attention without a mask trims the rows in at most `groups` row counts.
 * q (..., L, E), k (..., S, E), v (..., S, Ev) with broadcastable batch dims; mask as
 * cg_scaled_dot_product_attention's (checked by the caller), of kind mask_kind; causal is
 * top-left aligned. No gradient flows to the mask. */
cg_tensor *flash_attention(cg_tensor *q, cg_tensor *k, cg_tensor *v, cg_tensor *mask, int mask_kind, bool causal, double scale,
                           int64_t block, int64_t groups);

#endif

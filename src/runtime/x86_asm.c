/* The x86-64 encoder (x86_asm.h). Each function appends one instruction; an allocation
 * failure sets oom and later bytes are dropped (the caller checks once at the end). */
#include "x86_asm.h"
#include <stdlib.h>
#include <string.h>

static void byte(xasm *a, uint8_t b) {
  if (a->len == a->cap) {
    size_t cap = a->cap ? a->cap * 2 : 4096;
    uint8_t *nb = a->oom ? NULL : realloc(a->buf, cap);
    if (!nb) {
      a->oom = true;
      return;
    }
    a->buf = nb, a->cap = cap;
  }
  a->buf[a->len++] = b;
}
static void u32(xasm *a, uint32_t v) {
  for (int i = 0; i < 4; i++) byte(a, (uint8_t)(v >> (8 * i)));
}

/* the end of an instruction: its RIP-relative operand (if any) is relative to here */
static void done(xasm *a) {
  if (!a->rip_pos) return;
  if (a->nfix + 2 > a->capfix) {
    size_t cap = a->capfix ? a->capfix * 2 : 64;
    size_t *f = a->oom ? NULL : realloc(a->fix, cap * sizeof *f);
    if (!f) a->oom = true;
    else a->fix = f, a->capfix = cap;
  }
  if (!a->oom) a->fix[a->nfix++] = a->rip_pos, a->fix[a->nfix++] = a->len;
  a->rip_pos = 0;
}

/* ModRM (+ SIB + disp32) for reg field r and operand rm */
static void modrm(xasm *a, int r, xop rm) {
  if (!rm.mem) {
    byte(a, (uint8_t)(0xc0 | (r & 7) << 3 | (rm.reg & 7)));
    return;
  }
  if (rm.base < 0) { /* RIP-relative: disp holds the pool offset until xa_finish */
    byte(a, (uint8_t)(0x05 | (r & 7) << 3));
    a->rip_pos = a->len;
    u32(a, (uint32_t)rm.disp);
    return;
  }
  int ss = rm.scale == 8 ? 3 : rm.scale == 4 ? 2 : rm.scale == 2 ? 1 : 0;
  if (rm.index < 0 && (rm.base & 7) != 4) byte(a, (uint8_t)(0x80 | (r & 7) << 3 | (rm.base & 7)));
  else {
    byte(a, (uint8_t)(0x84 | (r & 7) << 3));
    byte(a, (uint8_t)(ss << 6 | (rm.index < 0 ? 4 : rm.index & 7) << 3 | (rm.base & 7)));
  }
  u32(a, (uint32_t)rm.disp);
}

static int rm_b(xop rm) { return rm.mem ? (rm.base < 0 ? 0 : rm.base >> 3 & 1) : rm.reg >> 3 & 1; }
static int rm_x(xop rm) { return rm.mem && rm.index >= 0 ? rm.index >> 3 & 1 : 0; }

static void rex(xasm *a, bool w, int r, xop rm, bool force) {
  uint8_t x = (uint8_t)(0x40 | w << 3 | (r >> 3 & 1) << 2 | rm_x(rm) << 1 | rm_b(rm));
  if (x != 0x40 || force) byte(a, x);
}

/* [REX] opcode... ModRM */
static void gop(xasm *a, bool w, const uint8_t *op, int nop, int r, xop rm, bool force_rex) {
  rex(a, w, r, rm, force_rex);
  for (int i = 0; i < nop; i++) byte(a, op[i]);
  modrm(a, r, rm);
}

void xa_alu_rm(xasm *a, xa_alu op, bool w, int r, xop rm) {
  gop(a, w, (uint8_t[]){(uint8_t)(op << 3 | 3)}, 1, r, rm, false);
  done(a);
}
void xa_alu_imm(xasm *a, xa_alu op, bool w, xop rm, int32_t imm) {
  bool small = imm >= -128 && imm <= 127;
  gop(a, w, (uint8_t[]){small ? 0x83 : 0x81}, 1, op, rm, false);
  if (small) byte(a, (uint8_t)imm);
  else u32(a, (uint32_t)imm);
  done(a);
}
void xa_mov_load(xasm *a, bool w, int r, xop m) {
  gop(a, w, (uint8_t[]){0x8b}, 1, r, m, false);
  done(a);
}
void xa_mov_store(xasm *a, bool w, xop m, int r) {
  gop(a, w, (uint8_t[]){0x89}, 1, r, m, false);
  done(a);
}
void xa_mov_imm(xasm *a, bool w, int r, int64_t imm) {
  if (!w || (imm >= 0 && imm <= UINT32_MAX)) { /* mov r32, imm32 zero-extends */
    rex(a, false, 0, xa_reg(r), false);
    byte(a, (uint8_t)(0xb8 | (r & 7)));
    u32(a, (uint32_t)imm);
  } else if (imm >= INT32_MIN && imm <= INT32_MAX) {
    gop(a, true, (uint8_t[]){0xc7}, 1, 0, xa_reg(r), false);
    u32(a, (uint32_t)imm);
  } else {
    rex(a, true, 0, xa_reg(r), false);
    byte(a, (uint8_t)(0xb8 | (r & 7)));
    u32(a, (uint32_t)imm), u32(a, (uint32_t)((uint64_t)imm >> 32));
  }
  done(a);
}
void xa_movsxd(xasm *a, int r, xop rm) {
  gop(a, true, (uint8_t[]){0x63}, 1, r, rm, false);
  done(a);
}
void xa_movzx8(xasm *a, int r, xop rm) {
  gop(a, false, (uint8_t[]){0x0f, 0xb6}, 2, r, rm, !rm.mem);
  done(a);
}
void xa_store8(xasm *a, xop m, int r) {
  gop(a, false, (uint8_t[]){0x88}, 1, r, m, true);
  done(a);
}
void xa_imul(xasm *a, bool w, int r, xop rm) {
  gop(a, w, (uint8_t[]){0x0f, 0xaf}, 2, r, rm, false);
  done(a);
}
void xa_imul_imm(xasm *a, bool w, int r, xop rm, int32_t imm) {
  bool small = imm >= -128 && imm <= 127;
  gop(a, w, (uint8_t[]){small ? 0x6b : 0x69}, 1, r, rm, false);
  if (small) byte(a, (uint8_t)imm);
  else u32(a, (uint32_t)imm);
  done(a);
}
void xa_lea(xasm *a, int r, xop m) {
  gop(a, true, (uint8_t[]){0x8d}, 1, r, m, false);
  done(a);
}
void xa_lea32(xasm *a, int r, xop m) {
  gop(a, false, (uint8_t[]){0x8d}, 1, r, m, false);
  done(a);
}
void xa_unary(xasm *a, int ext, bool w, xop rm) {
  gop(a, w, (uint8_t[]){0xf7}, 1, ext, rm, false);
  done(a);
}
void xa_shift_cl(xasm *a, int ext, bool w, xop rm) {
  gop(a, w, (uint8_t[]){0xd3}, 1, ext, rm, false);
  done(a);
}
void xa_cqo(xasm *a, bool w) {
  if (w) byte(a, 0x48);
  byte(a, 0x99);
}
void xa_test(xasm *a, bool w, int r, xop rm) {
  gop(a, w, (uint8_t[]){0x85}, 1, r, rm, false);
  done(a);
}
void xa_setcc(xasm *a, xa_cc cc, int r) {
  gop(a, false, (uint8_t[]){0x0f, (uint8_t)(0x90 | cc)}, 2, 0, xa_reg(r), true);
  done(a);
}
void xa_cmov(xasm *a, xa_cc cc, bool w, int r, xop rm) {
  gop(a, w, (uint8_t[]){0x0f, (uint8_t)(0x40 | cc)}, 2, r, rm, false);
  done(a);
}
size_t xa_jcc(xasm *a, xa_cc cc) {
  byte(a, 0x0f), byte(a, (uint8_t)(0x80 | cc));
  u32(a, 0);
  return a->len - 4;
}
size_t xa_jmp(xasm *a) {
  byte(a, 0xe9);
  u32(a, 0);
  return a->len - 4;
}
void xa_patch(xasm *a, size_t at, size_t target) {
  if (a->oom || at + 4 > a->len) return;
  uint32_t rel = (uint32_t)((int64_t)target - (int64_t)(at + 4));
  memcpy(a->buf + at, &rel, 4);
}
void xa_push(xasm *a, int r) {
  if (r >= 8) byte(a, 0x41);
  byte(a, (uint8_t)(0x50 | (r & 7)));
}
void xa_pop(xasm *a, int r) {
  if (r >= 8) byte(a, 0x41);
  byte(a, (uint8_t)(0x58 | (r & 7)));
}
void xa_ret(xasm *a) { byte(a, 0xc3); }
void xa_vzeroupper(xasm *a) { byte(a, 0xc5), byte(a, 0xf8), byte(a, 0x77); }

/* VEX, the 2-byte form where it can be (as GNU as picks it) */
static void vex(xasm *a, int map, int pp, int w, int l, uint8_t op, int r, int vvvv, xop rm) {
  int R = r >> 3 & 1, X = rm_x(rm), B = rm_b(rm);
  if (map == 1 && !X && !B && !w) {
    byte(a, 0xc5);
    byte(a, (uint8_t)((!R) << 7 | (~vvvv & 15) << 3 | l << 2 | pp));
  } else {
    byte(a, 0xc4);
    byte(a, (uint8_t)((!R) << 7 | (!X) << 6 | (!B) << 5 | map));
    byte(a, (uint8_t)(w << 7 | (~vvvv & 15) << 3 | l << 2 | pp));
  }
  byte(a, op);
  modrm(a, r, rm);
  done(a);
}
void xa_kmovw_kr(xasm *a, int k, int r) { vex(a, 1, 0, 0, 0, 0x92, k, 0, xa_reg(r)); }
void xa_kmovw_rk(xasm *a, int r, int k) { vex(a, 1, 0, 0, 0, 0x93, r, 0, xa_reg(k)); }
void xa_kop(xasm *a, uint8_t opcode, int k, int k1, int k2) { vex(a, 1, 0, 0, 1, opcode, k, k1, xa_reg(k2)); }

void xa_evex(xasm *a, xe_ins in, int ll, int reg, int vvvv, xop rm, int k, bool z, int imm) {
  int R = reg >> 3 & 1, R2 = reg >> 4 & 1, B, X, V2 = vvvv >> 4 & 1;
  bool vsib = rm.mem && rm.index >= 0 && (in.op == 0x90 || in.op == 0x92 || in.op == 0xa0 || in.op == 0xa2) && in.map == 2;
  if (rm.mem) {
    B = rm.base < 0 ? 0 : rm.base >> 3 & 1;
    X = rm.index >= 0 ? rm.index >> 3 & 1 : 0;
    if (vsib) V2 = rm.index >> 4 & 1, vvvv = 0;
  } else B = rm.reg >> 3 & 1, X = rm.reg >> 4 & 1;
  byte(a, 0x62);
  byte(a, (uint8_t)((!R) << 7 | (!X) << 6 | (!B) << 5 | (!R2) << 4 | in.map));
  byte(a, (uint8_t)(in.w << 7 | (~vvvv & 15) << 3 | 4 | in.pp));
  byte(a, (uint8_t)(z << 7 | ll << 5 | (!V2) << 3 | (k & 7)));
  byte(a, in.op);
  modrm(a, reg, rm);
  if (imm >= 0) byte(a, (uint8_t)imm);
  done(a);
}

int32_t xa_const(xasm *a, const void *bytes, size_t n) {
  uint8_t blk[64] = {0};
  memcpy(blk, bytes, n > 64 ? 64 : n);
  for (size_t off = 0; off < a->npool; off += 64)
    if (!memcmp(a->pool + off, blk, 64)) return (int32_t)off;
  if (a->npool + 64 > a->cappool) {
    size_t cap = a->cappool ? a->cappool * 2 : 1024;
    uint8_t *p = a->oom ? NULL : realloc(a->pool, cap);
    if (!p) {
      a->oom = true;
      return 0;
    }
    a->pool = p, a->cappool = cap;
  }
  memcpy(a->pool + a->npool, blk, 64);
  a->npool += 64;
  return (int32_t)(a->npool - 64);
}

uint8_t *xa_finish(xasm *a, size_t *n) {
  while (a->len % 64) byte(a, 0xcc); /* int3 padding: the pool is never executed */
  size_t base = a->len;
  for (size_t i = 0; i < a->npool; i++) byte(a, a->pool[i]);
  if (a->oom) return NULL;
  for (size_t i = 0; i < a->nfix; i += 2) {
    int32_t off;
    memcpy(&off, a->buf + a->fix[i], 4);
    int32_t rel = (int32_t)((int64_t)base + off - (int64_t)a->fix[i + 1]);
    memcpy(a->buf + a->fix[i], &rel, 4);
  }
  *n = a->len;
  return a->buf;
}

void xa_free(xasm *a) {
  free(a->buf), free(a->pool), free(a->fix);
  memset(a, 0, sizeof *a);
}

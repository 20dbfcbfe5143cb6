/* An x86-64 instruction encoder: the bytes of the few instructions the machine-code
 * renderer (renderer/render_x86.c) emits — general-purpose integer ops (REX), the AVX-512
 * mask-register moves (VEX) and every vector/scalar float op in its EVEX form, so all 32
 * zmm registers are usable. Memory operands are [base + index*scale + disp32] (always the
 * 32-bit displacement: no compressed disp8, one encoding to get right) or RIP-relative to
 * a constant in the pool placed after the code (xa_finish).
 *
 *   xasm a = {0};
 *   xa_rr(&a, XA_ADD, true, RAX, RCX);                    // add rax, rcx
 *   xa_evex(&a, XE_VADDPS, 2, 0, 1, 2, xa_reg(3));        // vaddps zmm0, zmm1, zmm3
 *   int j = xa_jcc(&a, XCC_GE); ... xa_patch(&a, j, a.len) // forward jump
 *   uint8_t *code = xa_finish(&a, &n);                    // code + pool, fixed up
 *
 * tests/runtime/test_x86_asm.c checks the bytes against GNU as's. */
#ifndef CG_RUNTIME_X86_ASM_H
#define CG_RUNTIME_X86_ASM_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI, R8, R9, R10, R11, R12, R13, R14, R15 };

/* An operand: a register, or memory. */
typedef struct {
  bool mem;
  int8_t reg;    /* register operand */
  int8_t base;   /* memory: base GPR, or -1 for RIP-relative (disp = pool offset) */
  int8_t index;  /* memory: index GPR (or vector register for a gather), -1 none */
  uint8_t scale; /* 1 2 4 8 */
  int32_t disp;
} xop;

static inline xop xa_reg(int r) { return (xop){.reg = (int8_t)r, .index = -1}; }
static inline xop xa_mem(int base, int index, int scale, int32_t disp) {
  return (xop){.mem = true, .base = (int8_t)base, .index = (int8_t)index, .scale = (uint8_t)scale, .disp = disp};
}
static inline xop xa_pool(int32_t off) { return (xop){.mem = true, .base = -1, .index = -1, .scale = 1, .disp = off}; }

typedef struct {
  uint8_t *buf;
  size_t len, cap;
  uint8_t *pool;            /* constants, 64-byte aligned blocks */
  size_t npool, cappool;
  size_t *fix;              /* RIP fixups: position of the disp32, end of its instruction */
  size_t nfix, capfix;
  bool oom;
  size_t rip_pos;           /* the pending fixup of the instruction being emitted (0 none) */
} xasm;

/* ---- general-purpose ------------------------------------------------------------ */
typedef enum { XA_ADD = 0, XA_OR = 1, XA_AND = 4, XA_SUB = 5, XA_XOR = 6, XA_CMP = 7 } xa_alu;
/* op r, rm (w: 64-bit) */
void xa_alu_rm(xasm *a, xa_alu op, bool w, int r, xop rm);
/* op rm, imm32 (sign-extended when w) */
void xa_alu_imm(xasm *a, xa_alu op, bool w, xop rm, int32_t imm);
static inline void xa_rr(xasm *a, xa_alu op, bool w, int r, int s) { xa_alu_rm(a, op, w, r, xa_reg(s)); }
void xa_mov_load(xasm *a, bool w, int r, xop m);   /* mov r, rm */
void xa_mov_store(xasm *a, bool w, xop m, int r);  /* mov m, r */
void xa_mov_imm(xasm *a, bool w, int r, int64_t imm);
void xa_movsxd(xasm *a, int r, xop rm);           /* 64 <- sign-extended 32 */
void xa_movzx8(xasm *a, int r, xop rm);           /* 32 <- zero-extended 8 */
void xa_store8(xasm *a, xop m, int r);            /* mov byte m, r8 */
void xa_imul(xasm *a, bool w, int r, xop rm);      /* imul r, rm */
void xa_imul_imm(xasm *a, bool w, int r, xop rm, int32_t imm);
void xa_lea(xasm *a, int r, xop m);
void xa_lea32(xasm *a, int r, xop m); /* the 32-bit sum, zero-extended (int32 wrap) */
/* unary group 3 / shifts: NEG(3) NOT(2) IDIV(7) DIV(6); SHL(4) SHR(5) SAR(7) by cl */
void xa_unary(xasm *a, int ext, bool w, xop rm);
void xa_shift_cl(xasm *a, int ext, bool w, xop rm);
void xa_cqo(xasm *a, bool w);                     /* cdq / cqo */
void xa_test(xasm *a, bool w, int r, xop rm);
typedef enum { XCC_B = 2, XCC_AE = 3, XCC_E = 4, XCC_NE = 5, XCC_BE = 6, XCC_A = 7, XCC_P = 0xa, XCC_NP = 0xb,
               XCC_L = 0xc, XCC_GE = 0xd, XCC_LE = 0xe, XCC_G = 0xf } xa_cc;
void xa_setcc(xasm *a, xa_cc cc, int r);          /* setcc r8 (REX always: any register) */
void xa_cmov(xasm *a, xa_cc cc, bool w, int r, xop rm);
/* Jumps with a rel32 to fill in: the position to pass to xa_patch. */
size_t xa_jcc(xasm *a, xa_cc cc);
size_t xa_jmp(xasm *a);
void xa_patch(xasm *a, size_t at, size_t target);
void xa_push(xasm *a, int r);
void xa_pop(xasm *a, int r);
void xa_ret(xasm *a);
void xa_vzeroupper(xasm *a);

/* ---- AVX-512 mask registers (VEX) ---------------------------------------------------- */
void xa_kmovw_kr(xasm *a, int k, int r);   /* kmovw k, r32 */
void xa_kmovw_rk(xasm *a, int r, int k);   /* kmovw r32, k */
void xa_kop(xasm *a, uint8_t opcode, int k, int k1, int k2); /* korw 0x45, kandw 0x41, kandnw 0x42 (k = k1 op k2) */

/* ---- EVEX --------------------------------------------------------------------------
 * An instruction is {map, pp, opcode, W}; xa_evex emits op reg, vvvv, rm with vector
 * length ll (0: 128, 1: 256, 2: 512; scalar ops ignore it), mask k (0 none), zeroing z,
 * and imm8 when imm >= 0. reg / rm may name a GPR or a mask register where the
 * instruction says so; for a gather rm is VSIB (index = a vector register). */
typedef struct { uint8_t map, pp, op, w; } xe_ins;
#define XE(map, pp, op, w) ((xe_ins){map, pp, op, w})
/* pp: 0 none, 1 66, 2 F3, 3 F2; map 1 0F, 2 0F38, 3 0F3A */
#define XE_VADDPS XE(1, 0, 0x58, 0)
#define XE_VMULPS XE(1, 0, 0x59, 0)
#define XE_VSUBPS XE(1, 0, 0x5c, 0)
#define XE_VDIVPS XE(1, 0, 0x5e, 0)
#define XE_VSQRTPS XE(1, 0, 0x51, 0)
#define XE_VADDSS XE(1, 2, 0x58, 0)
#define XE_VMULSS XE(1, 2, 0x59, 0)
#define XE_VSUBSS XE(1, 2, 0x5c, 0)
#define XE_VDIVSS XE(1, 2, 0x5e, 0)
#define XE_VSQRTSS XE(1, 2, 0x51, 0)
#define XE_VADDSD XE(1, 3, 0x58, 1)
#define XE_VMULSD XE(1, 3, 0x59, 1)
#define XE_VSUBSD XE(1, 3, 0x5c, 1)
#define XE_VDIVSD XE(1, 3, 0x5e, 1)
#define XE_VSQRTSD XE(1, 3, 0x51, 1)
#define XE_VMOVUPS_LOAD XE(1, 0, 0x10, 0)
#define XE_VMOVUPS_STORE XE(1, 0, 0x11, 0)
#define XE_VMOVAPS XE(1, 0, 0x28, 0)
#define XE_VMOVSS_LOAD XE(1, 2, 0x10, 0)   /* from memory: the other lanes zeroed */
#define XE_VMOVSS_STORE XE(1, 2, 0x11, 0)
#define XE_VMOVSD_LOAD XE(1, 3, 0x10, 1)
#define XE_VMOVSD_STORE XE(1, 3, 0x11, 1)
#define XE_VMOVD_TOX XE(1, 1, 0x6e, 0)     /* vmovd xmm, r/m32 */
#define XE_VMOVD_FROMX XE(1, 1, 0x7e, 0)   /* vmovd r/m32, xmm (reg field = the xmm) */
#define XE_VMOVQ_TOX XE(1, 1, 0x6e, 1)
#define XE_VMOVQ_FROMX XE(1, 1, 0x7e, 1)
#define XE_VXORPS XE(1, 0, 0x57, 0)
#define XE_VPANDD XE(1, 1, 0xdb, 0)
#define XE_VPANDND XE(1, 1, 0xdf, 0)
#define XE_VPORD XE(1, 1, 0xeb, 0)
#define XE_VPXORD XE(1, 1, 0xef, 0)
#define XE_VPADDD XE(1, 1, 0xfe, 0)
#define XE_VPSUBD XE(1, 1, 0xfa, 0)
#define XE_VPMULLD XE(2, 1, 0x40, 0)
#define XE_VPMAXSD XE(2, 1, 0x3d, 0)
#define XE_VPMAXUD XE(2, 1, 0x3f, 0)
#define XE_VPSLLVD XE(2, 1, 0x47, 0)
#define XE_VPSRLVD XE(2, 1, 0x45, 0)
#define XE_VPSRAVD XE(2, 1, 0x46, 0)
#define XE_VCMPPS XE(1, 0, 0xc2, 0)        /* imm: predicate; reg = k */
#define XE_VCMPSS XE(1, 2, 0xc2, 0)
#define XE_VCMPSD XE(1, 3, 0xc2, 1)
#define XE_VPCMPD XE(3, 1, 0x1f, 0)        /* imm: 0 eq 1 lt 2 le 4 ne 5 nlt 6 nle */
#define XE_VPCMPUD XE(3, 1, 0x1e, 0)
#define XE_VPTESTMD XE(2, 1, 0x27, 0)
#define XE_VPMOVM2D XE(2, 2, 0x38, 0)      /* zmm <- k (reg = zmm, rm = k) */
#define XE_VPMOVD2M XE(2, 2, 0x39, 0)      /* k <- zmm sign bits (reg = k) */
#define XE_VBLENDMPS XE(2, 1, 0x65, 0)     /* reg{k} = k ? rm : vvvv */
#define XE_VPBLENDMD XE(2, 1, 0x64, 0)
#define XE_VPBROADCASTD_GPR XE(2, 1, 0x7c, 0)
#define XE_VPBROADCASTD XE(2, 1, 0x58, 0)  /* from xmm / m32 */
#define XE_VBROADCASTSS XE(2, 1, 0x18, 0)
#define XE_VFMADD231PS XE(2, 1, 0xb8, 0)   /* reg += vvvv * rm */
#define XE_VFMADD231SS XE(2, 1, 0xb9, 0)
#define XE_VFMADD231SD XE(2, 1, 0xb9, 1)
#define XE_VFMADD213PS XE(2, 1, 0xa8, 0)   /* reg = vvvv * reg + rm */
#define XE_VCVTDQ2PS XE(1, 0, 0x5b, 0)
#define XE_VCVTTPS2DQ XE(1, 2, 0x5b, 0)
#define XE_VCVTSI2SS XE(1, 2, 0x2a, 0)     /* w: from a 64-bit GPR */
#define XE_VCVTSI2SD XE(1, 3, 0x2a, 0)
#define XE_VCVTTSS2SI XE(1, 2, 0x2c, 0)    /* w: to a 64-bit GPR */
#define XE_VCVTTSD2SI XE(1, 3, 0x2c, 1)
#define XE_VCVTSS2SD XE(1, 2, 0x5a, 0)
#define XE_VCVTSD2SS XE(1, 3, 0x5a, 1)
#define XE_VUCOMISS XE(1, 0, 0x2e, 0)
#define XE_VUCOMISD XE(1, 1, 0x2e, 1)
#define XE_VGATHERDPS XE(2, 1, 0x92, 0)
#define XE_VPGATHERDD XE(2, 1, 0x90, 0)
#define XE_VSCATTERDPS XE(2, 1, 0xa2, 0)
#define XE_VPSCATTERDD XE(2, 1, 0xa0, 0)
#define XE_VGETEXPPS XE(2, 1, 0x42, 0)
#define XE_VGETMANTPS XE(3, 1, 0x26, 0)    /* imm: interval / sign */
#define XE_VSCALEFPS XE(2, 1, 0x2c, 0)
#define XE_VRNDSCALEPS XE(3, 1, 0x08, 0)   /* imm: rounding */
#define XE_VPSRLD_IMM XE(1, 1, 0x72, 0)    /* /2 ib: reg field = 2, vvvv = dest */
#define XE_VPSLLD_IMM XE(1, 1, 0x72, 0)    /* /6 ib */
#define XE_VPSRAD_IMM XE(1, 1, 0x72, 0)    /* /4 ib */
#define XE_VPTERNLOGD XE(3, 1, 0x25, 0)
#define XE_VFIXUPIMMPS XE(3, 1, 0x54, 0)
void xa_evex(xasm *a, xe_ins in, int ll, int reg, int vvvv, xop rm, int k, bool z, int imm);

/* A constant of n bytes (n <= 64) in the pool; its offset for xa_pool. Equal constants
 * share an entry. */
int32_t xa_const(xasm *a, const void *bytes, size_t n);
/* The code with the pool after it (64-byte aligned) and every RIP-relative operand fixed
 * up; *n its size. NULL on out of memory. The buffer belongs to a (xa_free). */
uint8_t *xa_finish(xasm *a, size_t *n);
void xa_free(xasm *a);

#endif

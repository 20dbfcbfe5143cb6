/* The x86-64 encoder (runtime/x86_asm.c): each instruction the renderer uses, encoded and
 * disassembled by binutils' objdump, must read back as the instruction meant (the text GNU
 * objdump prints for it). Skips with a message where objdump is not installed. Plus the
 * constant pool's RIP-relative fixups, checked by running the code. */
#define _GNU_SOURCE
#include "check.h"
#include "runtime/x86_asm.h"
#include "runtime/cpu_features.h"
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define M(b, i, s) xa_mem(b, i, s, 0x1000)
static const char *const expect[] = {
    "add eax,ecx", "add rax,r13", "sub rsp,0x1000", "and rsp,0xffffffffffffffc0", "cmp r9d,DWORD PTR [rsp+0x1000]",
    "mov r12,QWORD PTR [rdi+0x1000]", "mov QWORD PTR [rsp+0x1000],rdx", "mov eax,0x7fffffff", "mov rcx,0xffffffffffffffff",
    "movabs rcx,0x123456789", "movsxd rcx,DWORD PTR [r13+0x1000]", "movzx eax,BYTE PTR [r11+rcx*1+0x1000]",
    "mov BYTE PTR [r11+rcx*1+0x1000],sil", "imul eax,DWORD PTR [rbx+0x1000]", "imul eax,eax,0x310", "imul r8,r9,0x3",
    "lea rax,[r11+r12*4+0x1000]", "neg eax", "idiv rcx", "shl eax,cl", "sar r10d,cl", "cdq", "cqo", "test ecx,ecx", "sete al",
    "setp cl", "cmovl eax,ecx", "cmovae r15,QWORD PTR [rbp+0x1000]", "push rbx", "push r15", "pop r12", "ret", "vzeroupper",
    "kmovw k1,eax", "kmovw eax,k2", "korw k1,k1,k2", "kandw k1,k1,k2", "vaddps zmm0,zmm1,zmm2", "vaddps zmm0,zmm17,zmm31",
    "vaddps zmm25,zmm9,ZMMWORD PTR [rsp+0x1000]", "vmulss xmm0,xmm20,xmm5", "vfmadd231ps zmm0,zmm6,zmm30",
    "vfmadd213ps zmm0,zmm4,ZMMWORD PTR [r11+0x1000]", "vmovups zmm0{k1}{z},ZMMWORD PTR [r11+rcx*4+0x1000]",
    "vmovups ZMMWORD PTR [r11+rcx*4+0x1000]{k1},zmm22", "vmovaps zmm31,zmm0", "vmovss xmm0,DWORD PTR [r11+rcx*4+0x1000]",
    "vmovss DWORD PTR [rsp+0x1000],xmm17", "vcmplt_oqps k1,zmm4,zmm5", "vpcmpltd k1,zmm16,zmm3", "vpmovm2d zmm0,k1",
    "vpmovd2m k1,zmm19", "vblendmps zmm4{k1},zmm5,zmm6", "vpblendmd zmm0{k1},zmm3,zmm28", "vpbroadcastd zmm0,eax",
    "vpbroadcastd zmm0,DWORD PTR [rsi+0x1000]", "vbroadcastss zmm0,xmm21", "vgatherdps zmm0{k1},DWORD PTR [r11+zmm1*4+0x1000]",
    "vgatherdps zmm0{k1},DWORD PTR [r11+zmm24*4+0x1000]", "vpscatterdd DWORD PTR [r11+zmm17*4+0x1000]{k1},zmm0",
    "vcvttss2si eax,xmm7", "vcvttsd2si rax,xmm18", "vcvtsi2ss xmm0,xmm0,eax", "vcvtsi2sd xmm0,xmm0,rax",
    "vucomiss xmm2,xmm20", "vcvtdq2ps zmm0,zmm9", "vcvttps2dq zmm0,zmm1", "vpxord zmm0{k1},zmm0,zmm0", "vsqrtps zmm0,zmm12",
    "vdivss xmm0,xmm0,xmm13", "vrndscaleps zmm5,zmm4,0x0", "vscalefps zmm0,zmm0,zmm5", "vgetmantps zmm4,zmm1,0x3",
    "vgetexpps zmm5,zmm1", "vpsrld zmm0,zmm2,0x1f", "vmovd eax,xmm3", "vmovd xmm0,eax", "vpmulld zmm0,zmm1,zmm27",
    "vpsravd zmm0,zmm1,zmm2", "lea eax,[r11+r12*1+0x1000]", "valignd zmm0,zmm1,zmm1,0x5"};
#define N ((int)(sizeof expect / sizeof expect[0]))

static void emit(xasm *a, int k) {
  xe_ins cvs2 = XE_VCVTSI2SD;
  cvs2.w = 1;
  switch (k) {
  case 0: xa_rr(a, XA_ADD, false, RAX, RCX); break;
  case 1: xa_rr(a, XA_ADD, true, RAX, R13); break;
  case 2: xa_alu_imm(a, XA_SUB, true, xa_reg(RSP), 0x1000); break;
  case 3: xa_alu_imm(a, XA_AND, true, xa_reg(RSP), -64); break;
  case 4: xa_alu_rm(a, XA_CMP, false, R9, M(RSP, -1, 1)); break;
  case 5: xa_mov_load(a, true, R12, M(RDI, -1, 1)); break;
  case 6: xa_mov_store(a, true, M(RSP, -1, 1), RDX); break;
  case 7: xa_mov_imm(a, false, RAX, 0x7fffffff); break;
  case 8: xa_mov_imm(a, true, RCX, -1); break;
  case 9: xa_mov_imm(a, true, RCX, 0x123456789ll); break;
  case 10: xa_movsxd(a, RCX, M(R13, -1, 1)); break;
  case 11: xa_movzx8(a, RAX, M(R11, RCX, 1)); break;
  case 12: xa_store8(a, M(R11, RCX, 1), RSI); break;
  case 13: xa_imul(a, false, RAX, M(RBX, -1, 1)); break;
  case 14: xa_imul_imm(a, false, RAX, xa_reg(RAX), 784); break;
  case 15: xa_imul_imm(a, true, R8, xa_reg(R9), 3); break;
  case 16: xa_lea(a, RAX, M(R11, R12, 4)); break;
  case 17: xa_unary(a, 3, false, xa_reg(RAX)); break;
  case 18: xa_unary(a, 7, true, xa_reg(RCX)); break;
  case 19: xa_shift_cl(a, 4, false, xa_reg(RAX)); break;
  case 20: xa_shift_cl(a, 7, false, xa_reg(R10)); break;
  case 21: xa_cqo(a, false); break;
  case 22: xa_cqo(a, true); break;
  case 23: xa_test(a, false, RCX, xa_reg(RCX)); break;
  case 24: xa_setcc(a, XCC_E, RAX); break;
  case 25: xa_setcc(a, XCC_P, RCX); break;
  case 26: xa_cmov(a, XCC_L, false, RAX, xa_reg(RCX)); break;
  case 27: xa_cmov(a, XCC_AE, true, R15, M(RBP, -1, 1)); break;
  case 28: xa_push(a, RBX); break;
  case 29: xa_push(a, R15); break;
  case 30: xa_pop(a, R12); break;
  case 31: xa_ret(a); break;
  case 32: xa_vzeroupper(a); break;
  case 33: xa_kmovw_kr(a, 1, RAX); break;
  case 34: xa_kmovw_rk(a, RAX, 2); break;
  case 35: xa_kop(a, 0x45, 1, 1, 2); break;
  case 36: xa_kop(a, 0x41, 1, 1, 2); break;
  case 37: xa_evex(a, XE_VADDPS, 2, 0, 1, xa_reg(2), 0, false, -1); break;
  case 38: xa_evex(a, XE_VADDPS, 2, 0, 17, xa_reg(31), 0, false, -1); break;
  case 39: xa_evex(a, XE_VADDPS, 2, 25, 9, M(RSP, -1, 1), 0, false, -1); break;
  case 40: xa_evex(a, XE_VMULSS, 0, 0, 20, xa_reg(5), 0, false, -1); break;
  case 41: xa_evex(a, XE_VFMADD231PS, 2, 0, 6, xa_reg(30), 0, false, -1); break;
  case 42: xa_evex(a, XE_VFMADD213PS, 2, 0, 4, M(R11, -1, 1), 0, false, -1); break;
  case 43: xa_evex(a, XE_VMOVUPS_LOAD, 2, 0, 0, M(R11, RCX, 4), 1, true, -1); break;
  case 44: xa_evex(a, XE_VMOVUPS_STORE, 2, 22, 0, M(R11, RCX, 4), 1, false, -1); break;
  case 45: xa_evex(a, XE_VMOVAPS, 2, 31, 0, xa_reg(0), 0, false, -1); break;
  case 46: xa_evex(a, XE_VMOVSS_LOAD, 0, 0, 0, M(R11, RCX, 4), 0, false, -1); break;
  case 47: xa_evex(a, XE_VMOVSS_STORE, 0, 17, 0, M(RSP, -1, 1), 0, false, -1); break;
  case 48: xa_evex(a, XE_VCMPPS, 2, 1, 4, xa_reg(5), 0, false, 0x11); break;
  case 49: xa_evex(a, XE_VPCMPD, 2, 1, 16, xa_reg(3), 0, false, 1); break;
  case 50: xa_evex(a, XE_VPMOVM2D, 2, 0, 0, xa_reg(1), 0, false, -1); break;
  case 51: xa_evex(a, XE_VPMOVD2M, 2, 1, 0, xa_reg(19), 0, false, -1); break;
  case 52: xa_evex(a, XE_VBLENDMPS, 2, 4, 5, xa_reg(6), 1, false, -1); break;
  case 53: xa_evex(a, XE_VPBLENDMD, 2, 0, 3, xa_reg(28), 1, false, -1); break;
  case 54: xa_evex(a, XE_VPBROADCASTD_GPR, 2, 0, 0, xa_reg(RAX), 0, false, -1); break;
  case 55: xa_evex(a, XE_VPBROADCASTD, 2, 0, 0, M(RSI, -1, 1), 0, false, -1); break;
  case 56: xa_evex(a, XE_VBROADCASTSS, 2, 0, 0, xa_reg(21), 0, false, -1); break;
  case 57: xa_evex(a, XE_VGATHERDPS, 2, 0, 0, M(R11, 1, 4), 1, false, -1); break;
  case 58: xa_evex(a, XE_VGATHERDPS, 2, 0, 0, M(R11, 24, 4), 1, false, -1); break;
  case 59: xa_evex(a, XE_VPSCATTERDD, 2, 0, 0, M(R11, 17, 4), 1, false, -1); break;
  case 60: xa_evex(a, XE_VCVTTSS2SI, 0, RAX, 0, xa_reg(7), 0, false, -1); break;
  case 61: xa_evex(a, XE_VCVTTSD2SI, 0, RAX, 0, xa_reg(18), 0, false, -1); break;
  case 62: xa_evex(a, XE_VCVTSI2SS, 0, 0, 0, xa_reg(RAX), 0, false, -1); break;
  case 63: xa_evex(a, cvs2, 0, 0, 0, xa_reg(RAX), 0, false, -1); break;
  case 64: xa_evex(a, XE_VUCOMISS, 0, 2, 0, xa_reg(20), 0, false, -1); break;
  case 65: xa_evex(a, XE_VCVTDQ2PS, 2, 0, 0, xa_reg(9), 0, false, -1); break;
  case 66: xa_evex(a, XE_VCVTTPS2DQ, 2, 0, 0, xa_reg(1), 0, false, -1); break;
  case 67: xa_evex(a, XE_VPXORD, 2, 0, 0, xa_reg(0), 1, false, -1); break;
  case 68: xa_evex(a, XE_VSQRTPS, 2, 0, 0, xa_reg(12), 0, false, -1); break;
  case 69: xa_evex(a, XE_VDIVSS, 0, 0, 0, xa_reg(13), 0, false, -1); break;
  case 70: xa_evex(a, XE_VRNDSCALEPS, 2, 5, 0, xa_reg(4), 0, false, 0); break;
  case 71: xa_evex(a, XE_VSCALEFPS, 2, 0, 0, xa_reg(5), 0, false, -1); break;
  case 72: xa_evex(a, XE_VGETMANTPS, 2, 4, 0, xa_reg(1), 0, false, 3); break;
  case 73: xa_evex(a, XE_VGETEXPPS, 2, 5, 0, xa_reg(1), 0, false, -1); break;
  case 74: xa_evex(a, XE_VPSRLD_IMM, 2, 2, 0, xa_reg(2), 0, false, 31); break;
  case 75: xa_evex(a, XE_VMOVD_FROMX, 0, 3, 0, xa_reg(RAX), 0, false, -1); break;
  case 76: xa_evex(a, XE_VMOVD_TOX, 0, 0, 0, xa_reg(RAX), 0, false, -1); break;
  case 77: xa_evex(a, XE_VPMULLD, 2, 0, 1, xa_reg(27), 0, false, -1); break;
  case 78: xa_evex(a, XE_VPSRAVD, 2, 0, 1, xa_reg(2), 0, false, -1); break;
  case 79: xa_lea32(a, RAX, M(R11, R12, 1)); break;
  case 80: xa_evex(a, XE(3, 1, 0x03, 0), 2, 0, 1, xa_reg(1), 0, false, 5); break;
  }
}

/* "  1f:\t62 f1 ...\tvaddps zmm0,zmm1,zmm2" -> "vaddps zmm0,zmm1,zmm2" (spaces collapsed) */
static void text_of(const char *line, char *out, size_t n) {
  const char *t = strrchr(line, '\t');
  t = t ? t + 1 : line;
  size_t w = 0;
  bool sp = false;
  for (; *t && *t != '\n' && w + 1 < n; t++) {
    if (isspace((unsigned char)*t)) sp = w > 0;
    else {
      if (sp) out[w++] = ' ';
      sp = false;
      out[w++] = *t;
    }
  }
  out[w] = 0;
}

static void check_objdump(void) {
  if (system("objdump --version >/dev/null 2>&1") != 0) {
    printf("skipped: objdump (binutils) is not installed\n");
    return;
  }
  char bin[] = "/tmp/cg_x86_asm_XXXXXX";
  int fd = mkstemp(bin);
  CHECK(fd >= 0, "mkstemp");
  if (fd < 0) return;
  size_t at[N + 1];
  xasm a = {0};
  for (int k = 0; k < N; k++) at[k] = a.len, emit(&a, k);
  at[N] = a.len;
  CHECK(!a.oom && write(fd, a.buf, a.len) == (ssize_t)a.len, "write");
  close(fd);
  char cmd[512];
  snprintf(cmd, sizeof cmd, "objdump -D -b binary -m i386:x86-64 -M intel %s", bin);
  FILE *p = popen(cmd, "r");
  char line[512], got[256];
  int k = 0;
  while (p && fgets(line, sizeof line, p)) {
    unsigned long off;
    char *colon = strchr(line, ':');
    if (!colon || sscanf(line, " %lx:", &off) != 1 || !strchr(colon, '\t')) continue;
    if (strstr(line, "file format") || strchr(colon + 1, '\t') == strrchr(colon + 1, '\t')) continue; /* a wrapped byte line */
    while (k < N && at[k + 1] <= off) k++;
    if (k >= N) break;
    CHECK(off == at[k], "instruction %d (%s) starts at %zu, objdump found one at %lu", k, expect[k], at[k], off);
    text_of(line, got, sizeof got);
    /* our encodings are the long forms (EVEX where VEX would do, REX on every setcc): objdump
     * marks them, the instruction is the same */
    const char *g = got;
    if (!strncmp(g, "{evex} ", 7)) g += 7;
    if (!strncmp(g, "rex ", 4)) g += 4;
    CHECK(!strcmp(g, expect[k]), "instruction %d: expected '%s', objdump reads '%s'", k, expect[k], g);
    k++;
  }
  CHECK(k == N, "objdump listed %d of %d instructions", k, N);
  if (p) pclose(p);
  unlink(bin);
  xa_free(&a);
}

/* a function built from the pool: returns (float)pool[0] + the float argument's bits */
static void check_pool_runs(void) {
  if (!rt_cpu_avx512()) {
    printf("skipped: running AVX-512 code (this CPU lacks it)\n");
    return;
  }
  xasm a = {0};
  float c = 2.5f, d = 100.0f;
  /* float f(float x) { return x * 2.5 + 100; } through two pool constants */
  xa_evex(&a, XE_VMULSS, 0, 0, 0, xa_pool(xa_const(&a, &c, 4)), 0, false, -1);
  xa_evex(&a, XE_VADDSS, 0, 0, 0, xa_pool(xa_const(&a, &d, 4)), 0, false, -1);
  xa_ret(&a);
  size_t n;
  uint8_t *code = xa_finish(&a, &n);
  CHECK(code && n % 64 == 0 && n >= 128, "code + pool: %zu bytes", n);
  void *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  memcpy(m, code, n);
  CHECK(mprotect(m, 4096, PROT_READ | PROT_EXEC) == 0, "mprotect");
  float (*f)(float) = (float (*)(float))m;
  CHECK(f(3.0f) == 107.5f, "f(3) = %g, expected 107.5", (double)f(3.0f));
  CHECK(f(-40.0f) == 0.0f, "f(-40) = %g", (double)f(-40.0f));
  munmap(m, 4096);
  xa_free(&a);
}

int main(void) {
  check_objdump();
  check_pool_runs();
  return test_summary();
}

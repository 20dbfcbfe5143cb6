/* The program cache: a kernel (its scheduled AST, hash-consed: one pointer per structure)
 * is generated and compiled once per device, knob generation (cg_set_config: NOOPT and
 * compiler flags change the program) and opts, then every realize whose schedule has it
 * launches the cached program directly (engine/realize.c makes the entries).
 *
 * Bounded: CG_PROGRAM_CACHE (default 1024) entries, least recently used out first, so a
 * loop over ever new shapes does not grow memory without end. An entry in use is never
 * out: entries are reference counted. The table holds one reference; so does every user
 * that runs or keeps the program (a realize while it runs, each schedule-cache entry whose
 * plan names it, each JIT capture or replay that launches it). An entry dropped from the
 * table is freed (its program unloaded) when its last user releases it; a kernel met again
 * after that is generated again (the disk cache makes its compile a load). */
#ifndef CG_ENGINE_PROGRAMS_H
#define CG_ENGINE_PROGRAMS_H
#include "codegen/codegen.h"
#include "runtime/device.h"

typedef struct prog_entry {
  uop *ast;              /* the scheduled AST (retained): the key */
  rt_device *dev;
  unsigned long gen;
  rt_program *p;
  ckernel k;             /* the optimized AST, opts and source */
  double flops;
  int64_t global;        /* trips of the thread range */
  bool reduce;
  bool beam;             /* opts chosen by BEAM: the kernel's default program */
  int refs;              /* the table's (while in it) and each user's */
  struct prog_entry *chain, *prev, *next; /* hash chain; recency list, most recent first */
} prog_entry;

/* The cached program for ast on dev under the current knobs, with the opts given (o) or
 * the heuristic's (o NULL: a BEAM-chosen one counts too); one more reference for the
 * caller. NULL if none. */
prog_entry *programs_lookup(rt_device *dev, uop *ast, const opt *o, int nopts);
/* e (made with refs 1, the caller's, and compiled) into the table; least recently used
 * entries no one uses leave it past the bound. */
void programs_publish(prog_entry *e);
/* One more / one less reference (NULL: nothing). The last release frees an entry out of
 * the table, or one never published, and its program. */
void programs_retain(prog_entry *e);
void programs_release(prog_entry *e);
/* Entries in the table now, and how many left it for the bound so far. */
size_t programs_count(uint64_t *evictions);

#endif

/* Golden simplifications: each line is an input, the variables' ranges, and the exact
 * expression the symbolic rule set must produce (compared as interned nodes). */
#include "check.h"
#include "expr.h"
#include "uop/symbolic.h"

static const struct { const char *in, *out; } golden[] = {
    /* divmod folding: x in [0,100), y in [0,3], z in [-5,5], w in [1,9] */
    {"(x*4+y)/4", "x"},
    {"(x*4+y)%4", "y"},
    {"(x/8)*8 + x%8", "x"},
    {"x%8 + (x/8)*8", "x"},
    {"(y+x*4)/4", "x"},
    {"(x*8+y)/4", "x*2"},
    {"(x*8+y*2+1)/2", "x*4+y"},
    {"(x*12)/4", "x*3"},
    {"(x*12)%4", "0"},
    {"(x*4)/12", "x/3"},
    {"(x*4)%12", "(x%3)*4"},
    {"(x/4)/5", "x/20"},
    {"(x%20)%5", "x%5"},
    {"y/4", "0"},
    {"y%4", "y"},
    {"(x+4)/4", "x/4+1"},
    {"(z*4)/4", "z"},
    {"(z*4)%4", "0"},
    {"(z*6+4)/2", "z*3+2"},
    /* a common factor g of the divisor (g*B + s, s in [0, g)): through reshapes of
     * channel-broadcast or padded views */
    {"(x*4+y+4)/8", "(x+1)/2"},
    {"((x*4+1)%8)*2 + (x/2)*16", "x*8+2"},
    {"((x*4+y)%8)*400 + (x/2)*3200", "x*1600+y*400"},
    /* a 4-d index unflattened and flattened again: x = i over 2*3*4*5 = 120 */
    {"(((i/60)*3 + (i/20)%3)*4 + (i/5)%4)*5 + i%5", "i"},
    {"i%5 + ((i/5)%4)*5 + ((i/20)%3)*20 + (i/60)*60", "i"},
    {"((i/5)%4)*5 + i%5", "i%20"},
    /* x % c = (B % (c/g))*g + s for s in [0, g), g | c: a panel's column through 8-wide heads */
    {"(x*4+y)%8", "(x%2)*4+y"},
    {"(x*8+y*2+1)%16", "y*2+(x%2)*8+1"},
    /* identities and constants */
    {"x+0", "x"},
    {"x*1", "x"},
    {"x*0", "0"},
    {"x-x", "0"},
    {"(x+3)+4", "x+7"},
    {"(x*3)*4", "x*12"},
    {"3+x", "x+3"},
    {"(x+3)+y", "x+y+3"},
    {"x+x+x-x", "x*2"},
    {"2*3+4", "10"},
    {"-(-x)", "x"},
    {"x/1", "x"},
    {"x%1", "0"},
    {"z/-1", "-z"},
    /* bounds decide comparisons, MAX and WHERE */
    {"lt(y, 4)", "true"},
    {"lt(x, 0)", "false"},
    {"lt(x+2, 10)", "lt(x, 8)"},
    {"lt(x*4, 10)", "lt(x, 3)"},
    {"lt(x/4, 3)", "lt(x, 12)"},
    {"max(x, -1)", "x"},
    {"max(y, 10)", "10"},
    {"where(lt(y, 4), x, w)", "x"},
    {"where(lt(x, y), w, w)", "w"},
    {"ne(x, x)", "false"},
    {"eq(y, 7)", "false"},
    {"w/w", "1"},
    {"(x*w)/w", "=(x*w)/w"}, /* not a constant divisor: left alone ("=": exactly this) */
    {"x/4*4 + x%4 + y", "x+y"},
};

int main(void) {
  uop_pool_push();
  size_t live0 = uop_live_count();
  expr_var('x', 0, 99);
  expr_var('y', 0, 3);
  expr_var('z', -5, 5);
  expr_var('w', 1, 9);
  expr_var('i', 0, 119);
  for (size_t k = 0; k < sizeof golden / sizeof *golden; k++) {
    uop_pool_push();
    bool exact = golden[k].out[0] == '=';
    uop *in = expr_parse(golden[k].in), *want = expr_parse(golden[k].out + exact);
    CHECK(in && want, "cannot parse line %zu", k);
    if (in && want) {
      /* the expected text is written for people and read in the simplifier's normal
       * form; a variable or constant is compared as it is */
      uop *got = uop_simplify(in);
      if (!exact && want->op != OP_CONST && want->op != OP_DEFINE_VAR) want = uop_simplify(want);
      CHECK(got == want, "%-50s -> expected %s", golden[k].in, golden[k].out);
      if (got != want) {
        fprintf(stderr, "got:\n");
        uop_print(stderr, got);
      }
    }
    uop_pool_pop();
  }
  CHECK(sizeof golden / sizeof *golden >= 30, "at least 30 golden cases");
  expr_vars_free();
  uop_pool_pop();
  CHECK(uop_live_count() == live0 - 0, "no node leaks (%zu live, %zu before)", uop_live_count(), live0);
  return test_summary();
}

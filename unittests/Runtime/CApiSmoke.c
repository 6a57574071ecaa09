/*===- CApiSmoke.c - The C ABI compiled as C ------------------------------===*
 *
 * moe_runtime.h must be plain C: this file is compiled by the C compiler and
 * drives a context, the allocator and one op. Returns 0 on success, else the
 * number of the failed step.
 *===----------------------------------------------------------------------===*/
#include "moe-runtime/moe_runtime.h"

#include <stddef.h>

int moert_test_c_smoke(void) {
  moert_context *ctx = NULL;
  float *lhs, *rhs;
  int i;
  if (moert_context_create(MOERT_BACKEND_CPU, 0, &ctx) != MOERT_SUCCESS)
    return 1;
  moert_set_current_context(ctx);
  lhs = (float *)moert_alloc(4 * sizeof(float));
  rhs = (float *)moert_alloc(4 * sizeof(float));
  if (!lhs || !rhs)
    return 2;
  for (i = 0; i < 4; ++i) {
    lhs[i] = (float)i;
    rhs[i] = 1.0f;
  }
  if (moert_add(lhs, rhs, lhs, MOERT_F32, 2, 2, 2.0f) != MOERT_SUCCESS)
    return 3;
  if (lhs[3] != 7.0f)
    return 4;
  if (moert_routed_experts_workspace_bytes(1, 8, 2, 1, 4, MOERT_BF16, MOERT_BF16) !=
      moert_linear_eval(moert_routed_experts_workspace(8, 2, 1, 4, 2), 1))
    return 5;
  moert_free(lhs);
  moert_free(rhs);
  if (moert_current_bytes(ctx) != 0 || moert_peak_bytes(ctx) != 32)
    return 6;
  if (moert_context_synchronize(ctx) != MOERT_SUCCESS)
    return 7;
  moert_context_destroy(ctx);
  return moert_get_current_context() == NULL ? 0 : 8;
}

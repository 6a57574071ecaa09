//===- Communicator.cpp - The C ABI of communicators ----------------------===//
#include "Communicator.h"
#include "Internal.h"

using namespace moert;

bool CollectiveCall::operator==(const CollectiveCall &o) const {
  return std::string(op) == o.op && dtype == o.dtype && T == o.T && H == o.H;
}

std::string CollectiveCall::describe() const {
  const char *dtypeName = dtype == MOERT_BF16  ? "bf16"
                          : dtype == MOERT_F16 ? "f16"
                          : dtype == MOERT_F32 ? "f32"
                                               : "?";
  return cat(op, " (", dtypeName, ", T = ", T, ", H = ", H, ")");
}

#ifndef MOE_ENABLE_NCCL
moert_status moert::createNcclGroup(int, const int32_t *,
                                    std::vector<std::unique_ptr<Communicator>> &,
                                    std::string &error) {
  error = "this runtime was built without NCCL (configure with "
          "-DMOE_ENABLE_CUDA=ON and NCCL found, e.g. -DNCCL_ROOT=...)";
  return MOERT_ERROR_BACKEND_UNAVAILABLE;
}
#endif

extern "C" {

moert_status moert_comm_create_group(moert_backend backend, int32_t nranks,
                                     const int32_t *devices,
                                     moert_comm **comms) {
  const char *fn = "moert_comm_create_group";
  return guarded<moert_status>(
      nullptr, fn, MOERT_ERROR_INTERNAL, [&]() -> moert_status {
        if (!comms)
          return fail(nullptr, MOERT_ERROR_INVALID_ARGUMENT,
                      cat(fn, ": comms is NULL"));
        if (nranks < 1)
          return fail(nullptr, MOERT_ERROR_INVALID_ARGUMENT,
                      cat(fn, ": nranks must be at least 1, got ", nranks));
        for (int32_t r = 0; r < nranks; ++r)
          comms[r] = nullptr;
        std::vector<std::unique_ptr<Communicator>> members;
        switch (rawValue(backend)) {
        case MOERT_BACKEND_CPU:
          for (int32_t r = 0; devices && r < nranks; ++r)
            if (devices[r] != 0)
              return fail(nullptr, MOERT_ERROR_INVALID_ARGUMENT,
                          cat(fn, ": the CPU backend has only device 0, rank ",
                              r, " asks for device ", devices[r]));
          members = createCPUGroup(nranks);
          break;
        case MOERT_BACKEND_CUDA: {
          std::vector<int32_t> ordinals(static_cast<size_t>(nranks));
          for (int32_t r = 0; r < nranks; ++r) {
            ordinals[size_t(r)] = devices ? devices[r] : r;
            if (ordinals[size_t(r)] < 0)
              return fail(nullptr, MOERT_ERROR_INVALID_ARGUMENT,
                          cat(fn, ": rank ", r, " has device ",
                              ordinals[size_t(r)]));
            for (int32_t s = 0; s < r; ++s)
              if (ordinals[size_t(s)] == ordinals[size_t(r)])
                return fail(nullptr, MOERT_ERROR_INVALID_ARGUMENT,
                            cat(fn, ": ranks ", s, " and ", r,
                                " both use CUDA device ", ordinals[size_t(r)],
                                " (one device per rank)"));
          }
          std::string error;
          moert_status status =
              createNcclGroup(nranks, ordinals.data(), members, error);
          if (status != MOERT_SUCCESS)
            return fail(nullptr, status, cat(fn, ": ", error));
          break;
        }
        default:
          return fail(nullptr, MOERT_ERROR_INVALID_ARGUMENT,
                      cat(fn, ": unknown backend ", rawValue(backend)));
        }
        std::vector<std::unique_ptr<moert_comm>> handles;
        for (auto &member : members) {
          handles.push_back(std::make_unique<moert_comm>());
          handles.back()->impl = std::move(member);
        }
        for (int32_t r = 0; r < nranks; ++r)
          comms[r] = handles[size_t(r)].release();
        return MOERT_SUCCESS;
      });
}

void moert_comm_destroy(moert_comm *comm) {
  if (!comm)
    return;
  guarded<int>(nullptr, "moert_comm_destroy", 0, [&] {
    if (comm->context)
      comm->context->comm = nullptr;
    delete comm;
    return 0;
  });
}

int32_t moert_comm_rank(const moert_comm *comm) {
  return comm ? comm->impl->rank() : -1;
}

int32_t moert_comm_size(const moert_comm *comm) {
  return comm ? comm->impl->size() : -1;
}

void moert_comm_abort(moert_comm *comm, const char *reason) {
  if (!comm)
    return;
  guarded<int>(nullptr, "moert_comm_abort", 0, [&] {
    comm->impl->abort(reason ? reason : "aborted");
    return 0;
  });
}

moert_status moert_comm_set_timeout(moert_comm *comm, int64_t milliseconds) {
  const char *fn = "moert_comm_set_timeout";
  if (!comm)
    return fail(nullptr, MOERT_ERROR_INVALID_ARGUMENT,
                cat(fn, ": comm is NULL"));
  if (milliseconds < 0)
    return fail(nullptr, MOERT_ERROR_INVALID_ARGUMENT,
                cat(fn, ": milliseconds must be non-negative, got ",
                    milliseconds));
  comm->impl->setTimeout(milliseconds);
  return MOERT_SUCCESS;
}

moert_status moert_context_set_comm(moert_context *ctx, moert_comm *comm) {
  const char *fn = "moert_context_set_comm";
  if (moert_status status = requireContext(ctx, fn); status != MOERT_SUCCESS)
    return status;
  return guarded<moert_status>(ctx, fn, MOERT_ERROR_INTERNAL, [&] {
    if (comm) {
      if (comm->context && comm->context != ctx)
        return fail(ctx, MOERT_ERROR_INVALID_ARGUMENT,
                    cat(fn, ": rank ", comm->impl->rank(),
                        "'s communicator already serves another context"));
      if (comm->impl->backend() != ctx->backend->kind())
        return fail(ctx, MOERT_ERROR_INVALID_ARGUMENT,
                    cat(fn, ": the communicator and the context (",
                        ctx->backend->describe(),
                        ") are on different backends"));
      if (comm->impl->backend() == MOERT_BACKEND_CUDA &&
          comm->impl->device() != ctx->backend->device())
        return fail(ctx, MOERT_ERROR_INVALID_ARGUMENT,
                    cat(fn, ": rank ", comm->impl->rank(), " is on device ",
                        comm->impl->device(), " but the context is ",
                        ctx->backend->describe()));
    }
    if (ctx->comm && ctx->comm != comm)
      ctx->comm->context = nullptr;
    ctx->comm = comm;
    if (comm)
      comm->context = ctx;
    return MOERT_SUCCESS;
  });
}

} // extern "C"

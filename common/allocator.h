// The process's allocator policy, set once by every sfpo process (cli/main.cc) and by the
// benchmarks that stand in for one.
#ifndef SFPO_COMMON_ALLOCATOR_H_
#define SFPO_COMMON_ALLOCATOR_H_

namespace sfpo {

// Makes glibc keep freed buffers for reuse (mmap threshold 32 MiB, trim threshold 1 GiB)
// instead of returning them to the kernel, so the next same-sized allocation does not fault
// its pages in again. On virtual machines page faults dominate two hot paths otherwise: a
// decode loop that allocates activations every step (2x slower), and gRPC's receive buffers
// while a policy version streams in. Process-wide and idempotent; the memory stays with the
// process for reuse.
void KeepFreedMemory();

}  // namespace sfpo

#endif  // SFPO_COMMON_ALLOCATOR_H_

#include "common/allocator.h"

#include <malloc.h>

namespace sfpo {

void KeepFreedMemory() {
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
}

}  // namespace sfpo

/* alloc.h: allocation through the caller's hooks (tnd_allocator), 64-byte aligned, and checked size arithmetic. */
#ifndef TND_CORE_ALLOC_H
#define TND_CORE_ALLOC_H

#include "tandem.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Allocates `size` bytes (64-byte aligned) through `a` (NULL or all-NULL hooks = C library). NULL on failure or for
 * size 0. The memory is zeroed. */
void *tnd_alloc(const tnd_allocator *a, size_t size);

/* Allocates n * size bytes, zeroed; NULL if the product overflows or the allocation fails. */
void *tnd_alloc_array(const tnd_allocator *a, size_t n, size_t size);

/* Frees memory from tnd_alloc; accepts NULL. */
void tnd_free(const tnd_allocator *a, void *ptr);

/* Checked arithmetic: return false (and leave *out unspecified) when the result does not fit. */
static inline bool tnd_add_u64(uint64_t a, uint64_t b, uint64_t *out) { return !__builtin_add_overflow(a, b, out); }
static inline bool tnd_mul_u64(uint64_t a, uint64_t b, uint64_t *out) { return !__builtin_mul_overflow(a, b, out); }

#endif

/* alloc.c: the default allocator and the hook dispatch. */
#include "core/alloc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { TND_ALIGN = 64 };

/* The default allocator takes zeroed memory from calloc, which for large blocks gets fresh pages from the kernel
 * and does not write them: a KV cache or an activation buffer costs resident memory only where it is used, and no
 * time to clear. The block is aligned inside the calloc'ed one, whose address sits just before it for free. */
void *tnd_alloc(const tnd_allocator *a, size_t size) {
    if (size == 0) return NULL;
    if (a && a->alloc) {
        void *p = a->alloc(a->user, size);
        if (p) memset(p, 0, size);
        return p;
    }
    if (size > SIZE_MAX - TND_ALIGN - sizeof(void *)) return NULL;
    unsigned char *raw = calloc(1, size + TND_ALIGN + sizeof(void *));
    if (!raw) return NULL;
    uintptr_t at = ((uintptr_t)(raw + sizeof(void *)) + TND_ALIGN - 1) & ~(uintptr_t)(TND_ALIGN - 1);
    ((void **)at)[-1] = raw;
    return (void *)at;
}

void *tnd_alloc_array(const tnd_allocator *a, size_t n, size_t size) {
    size_t total;
    if (__builtin_mul_overflow(n, size, &total)) return NULL;
    return tnd_alloc(a, total);
}

void tnd_free(const tnd_allocator *a, void *ptr) {
    if (!ptr) return;
    if (a && a->free) a->free(a->user, ptr);
    else free(((void **)ptr)[-1]);
}

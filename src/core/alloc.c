/* alloc.c: the default allocator and the hook dispatch. */
#include "core/alloc.h"

#include <stdlib.h>
#include <string.h>

enum { TND_ALIGN = 64 };

void *tnd_alloc(const tnd_allocator *a, size_t size) {
    if (size == 0) return NULL;
    void *p = NULL;
    if (a && a->alloc) {
        p = a->alloc(a->user, size);
    } else {
        size_t rounded = (size + TND_ALIGN - 1) & ~(size_t)(TND_ALIGN - 1);
        if (rounded < size) return NULL;
        p = aligned_alloc(TND_ALIGN, rounded);
    }
    if (p) memset(p, 0, size);
    return p;
}

void *tnd_alloc_array(const tnd_allocator *a, size_t n, size_t size) {
    size_t total;
    if (__builtin_mul_overflow(n, size, &total)) return NULL;
    return tnd_alloc(a, total);
}

void tnd_free(const tnd_allocator *a, void *ptr) {
    if (!ptr) return;
    if (a && a->free) a->free(a->user, ptr);
    else free(ptr);
}

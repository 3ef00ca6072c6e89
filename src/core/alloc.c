/* alloc.c: the default allocator and the hook dispatch. */
#include "core/alloc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

enum { TND_ALIGN = 64, TND_HUGE_PAGE = 2 << 20 };

/* Asks the kernel to back the 2 MiB-aligned interior of a large fresh block with huge pages, where it does so only
 * when asked (transparent huge pages in "madvise" mode, Debian's default): packed weights and KV caches are read end
 * to end, and 512 times fewer pages mean as many fewer page faults when they are first written and fewer TLB misses
 * on every pass. Advice only: nothing changes where the kernel declines. */
static void advise_huge_pages(void *p, size_t size) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    uintptr_t begin = ((uintptr_t)p + TND_HUGE_PAGE - 1) & ~(uintptr_t)(TND_HUGE_PAGE - 1);
    uintptr_t end = ((uintptr_t)p + size) & ~(uintptr_t)(TND_HUGE_PAGE - 1);
    if (end > begin) (void)madvise((void *)begin, end - begin, MADV_HUGEPAGE);
#else
    (void)p;
    (void)size;
#endif
}

/* The default allocator takes zeroed memory from calloc, which for large blocks gets fresh pages from the kernel
 * and does not write them: a KV cache or an activation buffer costs resident memory only where it is used (to 2 MiB
 * where huge pages back it), and no time to clear. The block is aligned inside the calloc'ed one, whose address sits just before it for free. */
void *tnd_alloc(const tnd_allocator *a, size_t size) {
    if (size == 0) return NULL;
    if (a && a->alloc) {
        void *p = a->alloc(a->user, size);
        if (p) memset(p, 0, size);
        return p;
    }
    /* a block of a huge page or more starts on one, so that all of its whole huge pages can be huge (a 6 MiB
     * weight aligned to 64 bytes only would hold two of three at best); the slack before it is never touched but
     * for the word that finds the calloc'ed block */
    size_t align = size >= (size_t)TND_HUGE_PAGE ? (size_t)TND_HUGE_PAGE : (size_t)TND_ALIGN;
    if (size > SIZE_MAX - align - sizeof(void *)) return NULL;
    unsigned char *raw = calloc(1, size + align + sizeof(void *));
    if (!raw) return NULL;
    uintptr_t at = ((uintptr_t)(raw + sizeof(void *)) + align - 1) & ~(uintptr_t)(align - 1);
    ((void **)at)[-1] = raw;
    if (align == TND_HUGE_PAGE) advise_huge_pages((void *)at, size);
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

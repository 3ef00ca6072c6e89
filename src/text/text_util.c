/* text_util.c: growable buffers and the merge heap shared by the tokenizers. */
#include "text/text_util.h"

#include "core/alloc.h"

bool tnd_text_reserve(const tnd_allocator *a, void **buf, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return true;
    size_t new_cap = *cap ? *cap : 64;
    while (new_cap < need) {
        if (new_cap > SIZE_MAX / 2) return false;
        new_cap *= 2;
    }
    void *p = tnd_alloc_array(a, new_cap, elem);
    if (!p) return false;
    if (*buf && *cap) memcpy(p, *buf, *cap * elem);
    tnd_free(a, *buf);
    *buf = p;
    *cap = new_cap;
    return true;
}

bool tnd_merge_heap_push(tnd_merge_heap *h, const tnd_allocator *a, tnd_merge_entry e) {
    if (h->n == h->cap && !tnd_text_reserve(a, (void **)&h->items, &h->cap, h->n + 1, sizeof *h->items))
        return false;
    size_t i = h->n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (h->items[parent].key <= e.key) break;
        h->items[i] = h->items[parent];
        i = parent;
    }
    h->items[i] = e;
    return true;
}

bool tnd_merge_heap_pop(tnd_merge_heap *h, tnd_merge_entry *out) {
    if (h->n == 0) return false;
    *out = h->items[0];
    tnd_merge_entry last = h->items[--h->n];
    size_t i = 0, n = h->n;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= n) break;
        if (child + 1 < n && h->items[child + 1].key < h->items[child].key) child++;
        if (last.key <= h->items[child].key) break;
        h->items[i] = h->items[child];
        i = child;
    }
    if (n) h->items[i] = last;
    return true;
}

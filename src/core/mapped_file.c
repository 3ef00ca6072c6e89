/* mapped_file.c: POSIX file mapping with a read fallback. */
#include "core/mapped_file.h"

#include "core/alloc.h"
#include "core/error.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static tnd_status read_all(int fd, const char *path, tnd_mapped_file *out) {
    uint8_t *buf = tnd_alloc(&out->allocator, (size_t)out->size);
    if (!buf) return tnd_fail(TND_ERR_OUT_OF_MEMORY, "%s: cannot allocate %" PRIu64 " bytes", path, out->size);
    uint64_t done = 0;
    while (done < out->size) {
        ssize_t n = read(fd, buf + done, (size_t)(out->size - done));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            tnd_free(&out->allocator, buf);
            return tnd_fail(TND_ERR_IO, "%s: read failed at byte %" PRIu64 ": %s", path, done,
                            n < 0 ? strerror(errno) : "unexpected end of file");
        }
        done += (uint64_t)n;
    }
    out->data = buf;
    out->mapped = false;
    return TND_OK;
}

tnd_status tnd_mapped_file_open(const char *path, bool use_mmap, const tnd_allocator *allocator,
                                tnd_mapped_file *out) {
    if (!path || !out) return tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_mapped_file_open: NULL argument");
    memset(out, 0, sizeof *out);
    if (allocator) out->allocator = *allocator;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return tnd_fail(TND_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    tnd_status st = TND_OK;
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        st = tnd_fail(TND_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
        goto cleanup;
    }
    if (!S_ISREG(sb.st_mode)) {
        st = tnd_fail(TND_ERR_IO, "%s: not a regular file", path);
        goto cleanup;
    }
    out->size = (uint64_t)sb.st_size;
    if (out->size == 0 || (uint64_t)(size_t)out->size != out->size) {
        if (out->size) st = tnd_fail(TND_ERR_IO, "%s: too large for this address space", path);
        goto cleanup;
    }
    if (use_mmap) {
        void *p = mmap(NULL, (size_t)out->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p != MAP_FAILED) {
            out->data = p;
            out->mapped = true;
            goto cleanup;
        }
    }
    st = read_all(fd, path, out);
cleanup:
    close(fd);
    return st;
}

void tnd_mapped_file_close(tnd_mapped_file *f) {
    if (!f || !f->data) return;
    if (f->mapped) munmap((void *)f->data, (size_t)f->size);
    else tnd_free(&f->allocator, (void *)f->data);
    f->data = NULL;
}

void tnd_mapped_file_release(const tnd_mapped_file *f, const void *ptr, uint64_t bytes) {
    const uint8_t *p = ptr;
    if (!f->mapped || !p || p < f->data || bytes > f->size || (uint64_t)(p - f->data) > f->size - bytes) return;
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t begin = ((uintptr_t)p + page - 1) / page * page, end = ((uintptr_t)p + bytes) / page * page;
    if (end > begin) (void)madvise((void *)begin, end - begin, MADV_DONTNEED);
}

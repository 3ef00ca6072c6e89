/* mapped_file.h: a whole file in memory, read-only: mmap where possible, a plain read otherwise. */
#ifndef TND_CORE_MAPPED_FILE_H
#define TND_CORE_MAPPED_FILE_H

#include "tandem.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct tnd_mapped_file {
    const uint8_t *data;
    uint64_t size;
    bool mapped;        /* true: munmap on close; false: data was read into memory from `allocator` */
    tnd_allocator allocator;
} tnd_mapped_file;

/* Maps (use_mmap) or reads `path`. Falls back to reading when mapping fails. TND_ERR_IO names the path and the
 * system's reason. An empty file gives data == NULL, size 0. */
tnd_status tnd_mapped_file_open(const char *path, bool use_mmap, const tnd_allocator *allocator,
                                tnd_mapped_file *out);
void tnd_mapped_file_close(tnd_mapped_file *f);

/* Tells the system that [ptr, ptr + bytes) of a mapped file will not be read for a while (a device keeps its own
 * copy): the whole pages inside it leave memory and are read from the file again if touched. Nothing happens for
 * a file that was read into memory, or for a range outside the file. */
void tnd_mapped_file_release(const tnd_mapped_file *f, const void *ptr, uint64_t bytes);

#endif

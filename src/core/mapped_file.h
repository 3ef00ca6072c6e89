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

#endif

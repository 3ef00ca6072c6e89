/* model.h: the model handle: the mapped GGUF file and its validated view (later: hparams and bound tensors). */
#ifndef TND_MODEL_MODEL_H
#define TND_MODEL_MODEL_H

#include "core/log.h"
#include "core/mapped_file.h"
#include "gguf/gguf.h"

struct tnd_model {
    tnd_allocator allocator;
    tnd_logger log;
    tnd_mapped_file file;
    tnd_gguf *gguf;
    struct tnd_bound_model *bound; /* architecture binding, made by the first context (NULL before) */
};

#endif

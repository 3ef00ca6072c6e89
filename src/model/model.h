/* model.h: the model handle: the mapped GGUF file and its validated view (later: hparams and bound tensors). */
#ifndef TND_MODEL_MODEL_H
#define TND_MODEL_MODEL_H

#include "core/log.h"
#include "core/mapped_file.h"
#include "gguf/gguf.h"

#include <pthread.h>

struct tnd_model {
    tnd_allocator allocator;
    tnd_logger log;
    tnd_mapped_file file;
    tnd_gguf *gguf;
    /* Architecture binding, made once by the first context (NULL before): contexts may be created from several
     * threads at once, so it is made under bind_lock and published with a release store. */
    struct tnd_bound_model *_Atomic bound;
    pthread_mutex_t bind_lock;
};

#endif

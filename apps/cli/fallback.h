/* fallback.h: going on without the cloud (or a GPU). When a step finds a device lost (TND_ERR_DEVICE_LOST: the
 * cloud link died or stalled, the GPU was reset), a command moves its sessions (tnd_session_move) to a context here:
 * of --fallback-model, a smaller model of the same vocabulary opened and made ready at start so the switch is quick,
 * or else of the command's own model file, all of it on this machine's CPU. */
#ifndef TND_CLI_FALLBACK_H
#define TND_CLI_FALLBACK_H

#include "tandem.h"

#include <stdbool.h>

typedef struct cli_fallback {
    bool armed;                 /* the plan has a device that can be lost (a cloud, a GPU) */
    tnd_model *model;           /* --fallback-model's; NULL: the command's own */
    tnd_context_params params;  /* the command's context, on the CPU alone */
    tnd_context *ready;         /* the fallback model's context, made at start */
    int32_t n_switches;
} cli_fallback;

/* Prepares the way out for a context of params p on `model` (tokenizer tok); nothing where p runs on the CPU alone.
 * Prints the error and returns false when the fallback model cannot be opened or speaks another vocabulary. */
bool cli_fallback_open(cli_fallback *f, const char *fallback_path, tnd_model *model, const tnd_tokenizer *tok,
                       const tnd_context_params *p);

/* After a step returned TND_ERR_DEVICE_LOST: a context to go on in (the caller owns it), with a note on stderr of
 * what was lost and what runs now; NULL (after printing why) where there is none. */
tnd_context *cli_fallback_take(cli_fallback *f, tnd_model *model);

void cli_fallback_close(cli_fallback *f);

#endif

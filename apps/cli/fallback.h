/* fallback.h: going on without the cloud (or a GPU). When a step finds a device lost (TND_ERR_DEVICE_LOST: the
 * cloud link died or stalled, the GPU was reset), a command moves its sessions (tnd_session_move) to a context here:
 * of --fallback-model, a smaller model of the same vocabulary opened and made ready at start so the switch is quick,
 * or else of the command's own model file, all of it on this machine's CPU: made ready in the background once the
 * command runs, where the plan has a cloud and this machine's memory holds the model twice over, else made at the
 * loss (the load time of the model). */
#ifndef TND_CLI_FALLBACK_H
#define TND_CLI_FALLBACK_H

#include "tandem.h"

#include <pthread.h>
#include <stdbool.h>

enum {
    CLI_RETRY_SECONDS = 10,        /* after a loss, how often the plan's devices are tried again (at a new request) */
    CLI_RECONNECT_TIMEOUT_MS = 2000 /* and how long a try waits for the cloud */
};

typedef struct cli_fallback {
    bool armed;                 /* the plan has a device that can be lost (a cloud, a GPU) */
    tnd_model *model;           /* --fallback-model's; NULL: the command's own */
    tnd_context_params plan;    /* the command's context on the plan's devices (its arrays are the caller's) */
    tnd_context_params params;  /* the same on the CPU alone */
    tnd_context *ready;         /* the fallback's context, made ready (--fallback-model's at start, the command's own
                                   model's in the background) */
    tnd_model *own;             /* the command's model, while `maker` makes `ready` of it */
    pthread_t maker;
    bool making;
    bool lost;                  /* a device of the plan was lost: its devices are to be tried again */
    bool running;               /* the context the command runs on is the one cli_fallback_take gave */
    double retry_at;            /* when to try the plan's devices again */
} cli_fallback;

/* Prepares the way out for a context of params p on `model` (tokenizer tok); nothing where p runs on the CPU alone.
 * Prints the error and returns false when the fallback model cannot be opened or speaks another vocabulary. */
bool cli_fallback_open(cli_fallback *f, const char *fallback_path, tnd_model *model, const tnd_tokenizer *tok,
                       const tnd_context_params *p);

/* Once the command's context runs on the plan: where the fallback is the command's own model, the plan has a cloud and
 * this machine's available memory is at least twice the model's file, starts making its context in the background
 * (the loss then finds it ready, or waits for the rest of its making). */
void cli_fallback_prepare(cli_fallback *f, tnd_model *model);

/* After a step returned TND_ERR_DEVICE_LOST: a context to go on in (the caller owns it), with a note on stderr of
 * what was lost and what runs now; NULL (after printing why) where there is none. */
tnd_context *cli_fallback_take(cli_fallback *f, tnd_model *model);

/* While on the fallback, at a new request: where the loss is CLI_RETRY_SECONDS old, a context on the plan's devices
 * if they answer (noted on stderr; the caller moves its sessions there, and hands back `current`, the fallback's
 * context, which is kept where it is a fallback model's and freed otherwise); else NULL, and the next try comes
 * CLI_RETRY_SECONDS later. */
tnd_context *cli_fallback_retry(cli_fallback *f, tnd_model *model);
void cli_fallback_keep(cli_fallback *f, tnd_context *current);

void cli_fallback_close(cli_fallback *f);

#endif

/* fallback.h: going on without the cloud (or a GPU). Where the plan has a cloud, this machine's available memory holds
 * the model's file and a quarter more, and following is on (no --no-follow, no --fallback-model), the command's
 * context keeps a stand-in of the cloud's part (tnd_context_params.remote_stand_in): at a loss the stand-in runs the
 * cloud's layers and the steps go on; the command notes the switch (cli_fallback_noticed) and tries the plan's
 * devices again later.
 *
 * Otherwise, when a step finds a device lost (TND_ERR_DEVICE_LOST: the
 * cloud link died or stalled, the GPU was reset), a command moves its sessions (tnd_session_move) to a context here:
 * of --fallback-model, a smaller model of the same vocabulary opened and made ready at start so the switch is quick,
 * or else of the command's own model file, all of it on this machine's CPU: made ready in the background once the
 * command runs, where the plan has a cloud and this machine's memory holds the model twice over, else made at the
 * loss (the load time of the model).
 *
 * A context made ready also follows the conversation: the command tells it every session's record after each step
 * (cli_fallback_follow), and a thread of the lowest scheduling priority (SCHED_IDLE: CPU time nothing else wants, as
 * while the cloud computes its stage) evaluates the records onto the same sequences there, in chunks of
 * CLI_FOLLOW_MIN to CLI_FOLLOW_MAX tokens. At a loss the sessions move onto rows already made (tnd_session_move keeps
 * them), so what is left to evaluate is the last few tokens, not the conversation. */
#ifndef TND_CLI_FALLBACK_H
#define TND_CLI_FALLBACK_H

#include "tandem.h"

#include <pthread.h>
#include <stdbool.h>

enum {
    CLI_RETRY_SECONDS = 10,        /* after a loss, how often the plan's devices are tried again (at a new request) */
    CLI_RECONNECT_TIMEOUT_MS = 2000, /* and how long a try waits for the cloud */
    CLI_FOLLOW_MIN = 16,           /* a record is followed once it is this many tokens ahead (one pass reads every
                                      weight: a chunk of several tokens costs little more than one) */
    CLI_FOLLOW_MAX = 64            /* and at most this many at a time (a loss waits for the chunk in flight) */
};

/* What the command last said of one sequence's record (cli_fallback_follow). */
typedef struct cli_record {
    int32_t *tokens;
    int32_t n, cap;
} cli_record;

typedef struct cli_fallback {
    bool armed;                 /* the plan has a device that can be lost (a cloud, a GPU) */
    tnd_model *model;           /* --fallback-model's; NULL: the command's own */
    tnd_context_params plan;    /* the command's context on the plan's devices (its arrays are the caller's) */
    tnd_context_params params;  /* the same on the CPU alone */
    tnd_context *ready;         /* the fallback's context, made ready (--fallback-model's at start, the command's own
                                   model's in the background) */
    tnd_model *own;             /* the command's model, while `worker` makes `ready` of it */
    pthread_t worker;           /* makes `ready` (where it is the command's own model's), then follows */
    bool working;
    /* the records to follow, guarded by `mutex`; `wake` tells the worker of a record ahead, or to stop */
    pthread_mutex_t mutex;
    pthread_cond_t wake;
    cli_record *records;        /* [n_records = params.n_seq_max] */
    int32_t n_records;
    int32_t chunk[CLI_FOLLOW_MAX]; /* the worker's copy of the tokens it evaluates */
    bool follow;                /* the worker follows the records once `ready` is made */
    bool stop;
    bool lost;                  /* a device of the plan was lost: its devices are to be tried again */
    bool running;               /* the context the command runs on is the one cli_fallback_take gave, or the plan's
                                   whose stand-in took over */
    double retry_at;            /* when to try the plan's devices again */
} cli_fallback;

/* Prepares the way out for a context of params p on `model` (tokenizer tok); nothing where p runs on the CPU alone.
 * follow: the way out follows the conversation (--no-follow: not). Sets p->remote_stand_in where the stand-in is
 * the way out (above).
 * Prints the error and returns false when the fallback model cannot be opened or speaks another vocabulary. */
bool cli_fallback_open(cli_fallback *f, const char *fallback_path, bool follow, tnd_model *model,
                       const tnd_tokenizer *tok, tnd_context_params *p);

/* Once the command's context runs on the plan: where the fallback is the command's own model, the plan has a cloud and
 * this machine's available memory is at least twice the model's file, starts making its context in the background
 * (the loss then finds it ready, or waits for the rest of its making); a context made ready follows the records. */
void cli_fallback_prepare(cli_fallback *f, tnd_model *model);

/* After a step on ctx: true once per loss where the context's stand-in took the cloud's layers over, after a note on
 * stderr; the plan's devices are then tried again as after a move (cli_fallback_retry). */
bool cli_fallback_noticed(cli_fallback *f, tnd_context *ctx);

/* After a step: session `seq`'s record is tokens[0..n) (copied). Cheap; nothing where there is no fallback. */
void cli_fallback_follow(cli_fallback *f, int32_t seq, const int32_t *tokens, int32_t n);

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

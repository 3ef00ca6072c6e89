/* server.h: internal interfaces of `tandem serve`: configuration, the request record shared by the HTTP threads and
 * the batching engine, the engine, the OpenAI JSON mapping, metrics and small helpers. */
#ifndef TND_SERVER_H
#define TND_SERVER_H

#include "tandem.h"

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
    SRV_MAX_STOPS = 4,         /* stop strings per request, as OpenAI allows */
    SRV_MAX_TOP_LOGPROBS = 20, /* top_logprobs per token, as OpenAI allows */
    SRV_MAX_JSON_DEPTH = 32,   /* nesting of request bodies (OpenAI bodies need about 5) */
    SRV_MAX_MESSAGES = 4096,
    SRV_MAX_LOGIT_BIAS = 1024,
};

/* ------------------------------------------------------------------------------------------------------------
 * Configuration (command-line options)
 * ---------------------------------------------------------------------------------------------------------- */

typedef struct srv_config {
    const char *model_path;
    const char *host;          /* numeric address to listen on (default 127.0.0.1) */
    int port;                  /* 0 = any free port (the chosen one is printed) */
    int32_t parallel;          /* sequences decoded together (slots) */
    int32_t n_ctx;             /* tokens per sequence: prompt + generated */
    int32_t n_batch;           /* most tokens per forward step (one per generating slot + prompt chunks) */
    int32_t n_threads;         /* 0 = physical cores */
    int32_t max_queue;         /* requests waiting for a slot before 429 */
    int32_t max_connections;
    tnd_type k_type, v_type;   /* KV cache types of K and V */
    const char *api_key;       /* NULL = no authentication */
    const char *chat_template; /* NULL = recognise the model's */
    const char *alias;         /* model id in the API (default: the file name) */
    double request_timeout;    /* seconds from arrival to the end of generation */
    unsigned read_timeout;     /* seconds a connection may stay silent while a request is read */
    size_t max_body;           /* bytes */
    bool log_prompts;          /* include prompt text in the request log */
    const tnd_speculation_params *spec; /* speculative decoding of every slot (NULL = none); a draft model's
                                           context has a sequence per slot, slot i drafts on sequence i */
    int32_t n_devices;         /* the placement plan (see tnd_context_params); 0 = one device */
    const int32_t *device_kinds;
    const char *remote, *remote_key_file; /* a cloud device's address and key (see tnd_context_params) */
    const char *fallback_model; /* --fallback-model: what runs here while the cloud is lost (NULL: the model) */
    bool no_follow;             /* --no-follow: no stand-in, nothing follows the conversations */
    const int32_t *group_device;
    int32_t n_groups;
    int32_t expert_device, expert_cache_slots, expert_cache_policy; /* tnd_context_params' (--experts-on, ...) */
} srv_config;

/* ------------------------------------------------------------------------------------------------------------
 * Small helpers (util.c)
 * ---------------------------------------------------------------------------------------------------------- */

typedef struct srv_buf {
    char *data; /* NUL-terminated when non-NULL */
    size_t len, cap;
} srv_buf;

/* Makes room for n more bytes plus a NUL. */
bool srv_buf_reserve(srv_buf *b, size_t n);
bool srv_buf_append(srv_buf *b, const void *bytes, size_t n);
bool srv_buf_printf(srv_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void srv_buf_free(srv_buf *b);

/* Monotonic seconds. */
double srv_now(void);

/* Compares a secret with a candidate in time that depends only on the candidate's length. */
bool srv_secret_equal(const char *secret, size_t secret_len, const char *candidate, size_t candidate_len);

/* Writes prefix + 24 random letters and digits + NUL into out (cap >= strlen(prefix) + 25). */
void srv_random_id(const char *prefix, char *out, size_t cap);

/* Routes jansson's allocations through a function that notes failures (call once, before any JSON is made). */
void srv_json_setup(void);

/* Whether a jansson allocation failed on this thread since the last call (which clears the note). jansson can
 * leave data out silently on such a failure, so whatever was loaded or built since is not to be trusted. */
bool srv_json_alloc_failed(void);

/* Copies n bytes to out, replacing every byte that does not belong to a well-formed UTF-8 character with U+FFFD, so
 * the result can go into JSON. */
bool srv_utf8_sanitize(const char *s, size_t n, srv_buf *out);

/* ------------------------------------------------------------------------------------------------------------
 * Requests: what the HTTP side asks for and what the engine produces
 * ---------------------------------------------------------------------------------------------------------- */

typedef enum srv_kind { SRV_KIND_CHAT, SRV_KIND_COMPLETION, SRV_KIND_EMBEDDING } srv_kind;

typedef enum srv_finish {
    SRV_FINISH_NONE = 0,
    SRV_FINISH_STOP,      /* end-of-generation token or a stop string */
    SRV_FINISH_LENGTH,    /* max_tokens, the context, or the time limit */
    SRV_FINISH_CANCELLED, /* the client went away */
    SRV_FINISH_ERROR      /* see error_status / error */
} srv_finish;

/* One generated token with its log-probability and the most likely alternatives (raw model distribution). */
typedef struct srv_token_info {
    int32_t token;
    float logprob;
    int32_t n_top;
    tnd_token_logprob top[SRV_MAX_TOP_LOGPROBS];
} srv_token_info;

/* A request. The HTTP thread fills the parameters before submitting; after that they are read-only. The output
 * fields are shared: the engine appends, the HTTP thread takes, both under `mu`. Two references exist while the
 * engine holds it (one per side); the last release frees it. */
/* The tools of a chat request (tools.c). */
typedef enum srv_tool_choice { SRV_TOOLS_NONE = 0, SRV_TOOLS_AUTO, SRV_TOOLS_REQUIRED } srv_tool_choice;

/* Where a family's prompt describes the tools. */
typedef enum srv_tools_place {
    SRV_TOOLS_IN_SYSTEM,      /* at the end of the system turn */
    SRV_TOOLS_IN_FIRST_USER,  /* before the first user message's text */
    SRV_TOOLS_AS_MESSAGE      /* a "tools" message, which the chat template places (mistral-v3: before the last turn) */
} srv_tools_place;

/* How a model family is told about tools and writes its calls (tools.c): Hermes / Qwen (and every template without
 * a format of its own), Llama 3.x, Mistral v3. A reply's calls are `open call (sep call)* close`, each call
 * {"name": ..., "<args_key>": {...}}. */
typedef struct srv_tool_format {
    const char *name;
    srv_tools_place place;
    const char *args_key;    /* "arguments" or "parameters" */
    const char *open, *sep, *close; /* around and between the calls ("" open: the whole reply is one call) */
    const char *marker;      /* what starts the calls in a reply (NULL: the whole reply is one call) */
    bool list;               /* the calls are one JSON array after the marker (Mistral) */
    bool parallel;           /* the format writes several calls in one reply */
} srv_tool_format;

extern const srv_tool_format srv_tool_format_hermes, srv_tool_format_llama3, srv_tool_format_mistral;

typedef struct srv_tools {
    srv_tool_choice choice;  /* NONE also when the request has no tools */
    const srv_tool_format *format;
    char *named;             /* the function tool_choice names (choice REQUIRED), or NULL */
    bool parallel;           /* several calls in one reply */
    char *prompt_text;       /* the tools described for the prompt (system turn or first user message) */
    char **names;            /* [n] */
    int32_t n;
} srv_tools;

/* A call found in a reply: the function's name and its arguments as compact JSON text. */
typedef struct srv_tool_call {
    char *name, *arguments;
} srv_tool_call;

typedef struct srv_request {
    /* parameters */
    srv_kind kind;
    bool stream, include_usage;
    bool logprobs;                 /* report srv_token_info per generated token */
    int32_t top_logprobs;          /* 0..SRV_MAX_TOP_LOGPROBS */
    int32_t *prompt;               /* token ids, owned */
    int32_t n_prompt;
    int32_t max_tokens;            /* -1 = until the end of generation or the context */
    tnd_sampler_params sampling;   /* logit_bias points at `bias` */
    tnd_logit_bias *bias;          /* owned */
    char *stops[SRV_MAX_STOPS];    /* owned */
    int32_t n_stops;
    tnd_grammar *grammar;          /* owned: what response_format or tool_choice asks the output to be */
    srv_tools tools;               /* owned */
    /* embeddings: the inputs' tokens, one run after the other in `prompt` (n_prompt in all), input i being
     * input_len[i] tokens; the engine writes embeddings[n_inputs][n_embd] */
    int32_t *input_len;            /* owned */
    int32_t n_inputs, n_embd;
    bool base64;                   /* encoding_format "base64" */
    float *embeddings;             /* owned */
    double t_arrival, deadline;    /* srv_now() seconds */
    char id[48];
    int64_t created;               /* Unix seconds */

    /* shared state, under mu */
    pthread_mutex_t mu;
    pthread_cond_t cv;             /* signalled on new output and when done */
    srv_buf text;                  /* text produced and not yet taken */
    srv_token_info *infos;         /* token infos produced and not yet taken */
    int32_t n_infos, cap_infos;
    bool done;
    srv_finish finish;
    int error_status;              /* HTTP status for SRV_FINISH_ERROR */
    char error[256];
    int32_t n_cached;              /* prompt tokens reused from the KV cache */
    int32_t n_generated;
    double t_first_token;          /* 0 until the first token */
    int refs;

    atomic_int cancelled;          /* set by the HTTP side, read by the engine */

    /* queue links, under the engine's lock */
    struct srv_request *prev, *next;
    bool queued;
} srv_request;

/* A new request with one reference (the caller's); NULL when out of memory. */
srv_request *srv_request_new(void);

/* Drops one reference; the last one frees the request. Accepts NULL. */
void srv_request_release(srv_request *req);

/* Output taken from a request by the HTTP side. */
typedef struct srv_output {
    srv_buf text;
    srv_token_info *infos;
    int32_t n_infos, cap_infos;
} srv_output;

/* Moves the request's pending output to the end of *out (the caller holds no lock). Returns 1 if the request is
 * done (all its output is then in *out), 0 if not, -1 when out of memory (nothing moved); *has_new says whether
 * anything was moved. */
int srv_request_take(srv_request *req, srv_output *out, bool *has_new);

/* Waits up to `seconds` for output or the end of the request; returns whether either is there. */
bool srv_request_wait(srv_request *req, double seconds);

void srv_output_free(srv_output *out);

/* ------------------------------------------------------------------------------------------------------------
 * Metrics (metrics.c): counters the HTTP side and the engine update, rendered as Prometheus text
 * ---------------------------------------------------------------------------------------------------------- */

typedef struct srv_metrics srv_metrics;

srv_metrics *srv_metrics_new(void);
void srv_metrics_free(srv_metrics *m);
void srv_metrics_request(srv_metrics *m, int status);
void srv_metrics_cancelled(srv_metrics *m);
/* Prompt tokens admitted (n_cached of them reused), and time to first token of a request. */
void srv_metrics_admitted(srv_metrics *m, int32_t n_prompt, int32_t n_cached);
void srv_metrics_first_token(srv_metrics *m, double seconds);
/* One forward step: prompt and generated tokens it processed, and its duration. */
void srv_metrics_step(srv_metrics *m, int32_t n_prompt_tokens, int32_t n_generated, double seconds);
/* What speculation did in a finished request: drafted tokens verified, of them accepted, verification steps. */
void srv_metrics_speculation(srv_metrics *m, int64_t drafted, int64_t accepted, int64_t verified);
/* Engine state after a step. */
void srv_metrics_engine(srv_metrics *m, int32_t queued, int32_t active, int32_t kv_used, int32_t kv_total);
/* A device was lost (lost: count it) and whether the engine runs on its fallback context now. */
void srv_metrics_device(srv_metrics *m, bool lost, bool on_fallback);
/* Appends the Prometheus text exposition to *out. */
/* Adds a step's figures of the context's hot-expert cache (tnd_context_expert_cache_stats). */
void srv_metrics_expert_cache(srv_metrics *m, const tnd_expert_cache_stats *step);
bool srv_metrics_render(srv_metrics *m, srv_buf *out);

/* ------------------------------------------------------------------------------------------------------------
 * Engine (engine.c): one thread that owns the context and runs continuous batching
 * ---------------------------------------------------------------------------------------------------------- */

typedef struct srv_engine srv_engine;

/* Creates the context (n_seq_max = cfg->parallel, KV room for parallel x n_ctx tokens) and starts the engine
 * thread. The model, tokenizer, config and metrics must outlive the engine. Returns a tnd_status with the error
 * recorded. */
tnd_status srv_engine_start(const srv_config *cfg, tnd_model *model, const tnd_tokenizer *tok, srv_metrics *metrics,
                            srv_engine **out);

/* Width of the model's embeddings. */
int32_t srv_engine_n_embd(const srv_engine *e);

/* Stops the thread: requests still running or queued end with a 503 error, later submissions are refused. The HTTP
 * threads may still call submit and cancel until srv_engine_free. Accepts NULL. */
void srv_engine_stop(srv_engine *e);

/* Stops if needed and frees everything. Accepts NULL. */
void srv_engine_free(srv_engine *e);

typedef enum srv_submit {
    SRV_SUBMIT_OK = 0,
    SRV_SUBMIT_QUEUE_FULL, /* 429 */
    SRV_SUBMIT_CLOSED      /* shutting down: 503 */
} srv_submit;

/* Queues a request; on SRV_SUBMIT_OK the engine holds its own reference until the request is done. */
srv_submit srv_engine_submit(srv_engine *e, srv_request *req);

/* Asks the engine to drop a request (the client went away): a queued request is removed at once, a running one is
 * stopped before the next step and its KV blocks are freed. */
void srv_engine_cancel(srv_engine *e, srv_request *req);

/* ------------------------------------------------------------------------------------------------------------
 * OpenAI mapping (openai.c)
 * ---------------------------------------------------------------------------------------------------------- */

/* What the mapping needs to know about the served model. */
typedef struct srv_model_info {
    const tnd_tokenizer *tok;
    const char *id;            /* model id in responses */
    const char *chat_template; /* built-in format name, or NULL when the model has none (chat is refused) */
    const char *eos_text;      /* NUL-terminated text of the EOS token for the template, or NULL */
    int32_t n_ctx;             /* tokens per sequence */
    int32_t n_vocab;
    int32_t n_embd;            /* width of embeddings */
    tnd_pooling pooling;       /* how /v1/embeddings pools the tokens' states */
} srv_model_info;

/* An API error: HTTP status and OpenAI's error fields. */
typedef struct srv_error {
    int status;
    const char *type;  /* "invalid_request_error", ... (static) */
    const char *code;  /* NULL or a static code ("context_length_exceeded") */
    char param[64];    /* "" = null */
    char message[512];
} srv_error;

/* Fills *err and returns false, for `return srv_fail(err, 400, ...)`. */
bool srv_fail(srv_error *err, int status, const char *type, const char *code, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* Whether a loaded JSON value nests at most `limit` levels of arrays and objects. */
bool srv_json_depth_ok(const json_t *v, int limit);

/* Loads a request body as JSON: duplicate keys refused, nesting limited to SRV_MAX_JSON_DEPTH, an allocation
 * failure inside the parser reported as such (never a silently altered body). NULL with *err filled. */
json_t *srv_openai_load(const char *data, size_t len, srv_error *err);

/* The OpenAI error body {"error": {...}} as a malloc'ed string (NULL when out of memory). */
char *srv_error_json(const srv_error *err);

/* Parses a body of /v1/chat/completions or /v1/completions (already loaded JSON) into a new request with the
 * prompt tokenized. Returns NULL with *err filled on invalid input. */
srv_request *srv_openai_parse(const srv_model_info *mi, srv_kind kind, const json_t *body, srv_error *err);

/* One server-sent event of a streamed response ("data: {...}\n\n") appended to *out: the chunk with `text` and
 * `infos` (either may be empty), or with the finish reason when `finish` != NONE, or the usage chunk when
 * usage_only. `first` adds the assistant role to a chat delta. *text_offset counts the bytes of the token pieces
 * reported so far (the text_offset of completions logprobs) and advances with `infos`. */
bool srv_openai_chunk(const srv_model_info *mi, const srv_request *req, const char *text, size_t text_len,
                      const srv_token_info *infos, int32_t n_infos, int32_t *text_offset, srv_finish finish,
                      bool first, bool usage_only, srv_buf *out);

/* Reads tools, tool_choice and parallel_tool_calls (each may be NULL) into *t, in the tool format of the chat
 * template; with tool_choice required or a named function, *grammar receives the grammar of replies made of calls
 * only. false with *err filled. */
bool srv_tools_parse(const char *chat_template, const json_t *tools, const json_t *choice, const json_t *parallel,
                     srv_tools *t, tnd_grammar **grammar, srv_error *err);

/* Appends call `index` of `count` the way the request's tool format writes it (an assistant message's tool_calls,
 * back into the prompt). false when out of memory. */
bool srv_tools_write_call(const srv_tools *t, const char *name, const char *arguments, size_t index, size_t count,
                          srv_buf *b);
void srv_tools_free(srv_tools *t);

/* Splits a reply into its calls (blocks naming a tool with object arguments) and the rest, trimmed, appended to
 * *content. *calls is malloc'ed (srv_tool_calls_free). false when out of memory. */
bool srv_tools_extract(const srv_tools *t, const char *text, size_t len, srv_buf *content, srv_tool_call **calls,
                       int32_t *n_calls);
void srv_tool_calls_free(srv_tool_call *calls, int32_t n);

/* The part of a reply in progress that can be streamed as content: text[*from, *to) is the start of the content the
 * finished reply will have (no call can begin in it; leading and trailing whitespace held back). */
void srv_tools_streamable(const srv_tools *t, const char *text, size_t len, size_t *from, size_t *to);

/* The end of a streamed chat reply with tools: the reply's content after the `sent` bytes already streamed (with
 * the role when `first`), each call as a tool_calls delta, and the finish chunk. */
bool srv_openai_tool_chunks(const srv_model_info *mi, const srv_request *req, const srv_output *whole, size_t sent,
                            bool first, srv_buf *out);

/* Parses a body of /v1/embeddings into a new request (SRV_KIND_EMBEDDING) with its inputs tokenized: input as a
 * string, an array of strings, an array of token ids or an array of such arrays; encoding_format float or base64;
 * dimensions refused unless the model's. NULL with *err filled on invalid input. */
srv_request *srv_openai_parse_embeddings(const srv_model_info *mi, const json_t *body, srv_error *err);

/* The /v1/embeddings response body of a finished request. */
char *srv_openai_embeddings(const srv_model_info *mi, const srv_request *req);

/* The whole (non-streamed) response body. */
char *srv_openai_response(const srv_model_info *mi, const srv_request *req, const srv_output *out);

/* /tokenize, /detokenize and /v1/models bodies; NULL with *err on invalid input. */
char *srv_openai_tokenize(const srv_model_info *mi, const json_t *body, srv_error *err);
char *srv_openai_detokenize(const srv_model_info *mi, const json_t *body, srv_error *err);
char *srv_openai_models(const srv_model_info *mi, int64_t created);

/* ------------------------------------------------------------------------------------------------------------
 * HTTP (http.c)
 * ---------------------------------------------------------------------------------------------------------- */

typedef struct srv_http srv_http;

/* Starts listening (thread per connection). *port_out receives the bound port. */
tnd_status srv_http_start(const srv_config *cfg, const srv_model_info *mi, srv_engine *engine, srv_metrics *metrics,
                          srv_http **out, int *port_out);

/* Stops accepting, closes connections and frees. Accepts NULL. */
void srv_http_stop(srv_http *h);

#endif

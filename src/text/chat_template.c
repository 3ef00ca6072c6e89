/* chat_template.c: the built-in chat formats (one table row each), recognition of a model's Jinja chat template by
 * its distinctive substrings, and rendering a conversation into prompt text.
 *
 * No Jinja is interpreted. Each format is described by data: the text written before and after a message of each
 * role, the assistant prompt, where a system message goes, which contents are stripped of whitespace, and whether
 * reasoning is dropped from earlier assistant replies. The rows were written from the models' published templates
 * (tokenizer_config.json / GGUF tokenizer.chat_template) as rendered by Hugging Face transformers (Jinja with
 * trim_blocks and lstrip_blocks), for plain text conversations of the roles system, user and assistant.
 *
 * Decisions, the same for every format:
 * - The text never starts with the BOS token: the tokenizer adds it (tokenizer.ggml.add_bos_token). BOS or EOS
 *   markers that a template writes inside the history (Llama 2's "</s><s>[INST]") are part of the text, so the
 *   prompt must be tokenized with special-token parsing on.
 * - Default system prompts that some templates insert when the conversation has none (Qwen 2.5, Mistral Small 3,
 *   DeepSeek Coder, the Llama 3.1 "Cutting Knowledge Date" preamble) are not inserted: the caller decides.
 * - Where a template rejects a system message (Gemma 2, Mistral 7B v0.1) the message is folded into the first user
 *   turn the way the same family's later template does (Gemma 3, Mistral's v1 template).
 * - Tool calls, images and other content types are outside this module: contents are plain UTF-8 text, copied
 *   verbatim except for the documented stripping. */
#include "tandem.h"

#include "core/alloc.h"
#include "core/error.h"
#include "text/tokenizer.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------------------------------
 * The format table
 * ------------------------------------------------------------------------------------------------------------- */

enum chat_role { ROLE_SYSTEM, ROLE_USER, ROLE_ASSISTANT, ROLE_TOOL, ROLE_TOOLS, ROLE_COUNT };

/* "tools" holds the definitions of the tools (JSON), for the formats that have a place for them of their own
 * (begin[ROLE_TOOLS] set): they are written before the last user turn, as Mistral's template does. */
static const char *const role_names[ROLE_COUNT] = {"system", "user", "assistant", "tool", "tools"};

/* A tool result in a format without a turn of its own for it: a user turn holding it between these (Qwen 2.5 / 3,
 * Hermes). */
#define TOOL_RESPONSE_BEGIN "<tool_response>\n"
#define TOOL_RESPONSE_END "\n</tool_response>"

/* Where a system message is written. */
enum system_placement {
    SYSTEM_AS_TURN = 0,     /* in place, between its own begin/end markers */
    SYSTEM_IN_FIRST_USER,   /* inside the first user turn, before the user's text, wrapped in fold_begin/fold_end */
    SYSTEM_IN_LAST_USER,    /* inside the last user turn (Mistral v3: the system text stays next to the question) */
};

/* What is removed from assistant replies that contain "</think>". */
enum reasoning_drop {
    KEEP_REASONING = 0,
    DROP_TO_LAST_THINK_END,    /* keep the text after the last "</think>" (DeepSeek R1: content.split('</think>')[-1]) */
    DROP_TO_LAST_THINK_END_NL, /* the same, then leading newlines removed (QwQ: ...[-1].lstrip('\n')) */
    DROP_TO_FIRST_THINK_END,   /* keep the text after the first one (DeepSeek V3.1: split('</think>', 1)[1]) */
};

/* Which assistant replies lose their reasoning. */
enum reasoning_scope {
    EVERY_REPLY = 0,          /* DeepSeek R1, V3.1 */
    REPLIES_BEFORE_LAST_USER, /* Qwen3: a reply after the last user message keeps it */
};

#define TRIM(role) (1u << (role))

/* Marker strings of the table may contain EOS_MARK where the template writes the model's eos_token: it is replaced
 * by the caller's EOS text, or the format's default_eos. Message contents are never scanned for it. */
#define EOS_MARK "{eos}"

typedef struct chat_format {
    const char *name;
    const char *begin[ROLE_COUNT]; /* written before a message's content; a tool result's NULL: see TOOL_RESPONSE */
    const char *end[ROLE_COUNT];   /* written after it */
    const char *assistant_prompt;  /* appended on request; "" where the user turn already ends with the cue */
    const char *default_eos;       /* EOS text used for EOS_MARK when the caller gives none */
    const char *user_turn_bos;     /* BOS text that opens every user turn except one at the very start */
    enum system_placement system;
    const char *fold_begin;        /* around the system text when it is folded into a user turn */
    const char *fold_end;
    unsigned trim;                 /* TRIM(role) bits: contents stripped of leading and trailing whitespace */
    bool trim_whole_turn;          /* strip fold_begin + system + fold_end + user as one string (Llama 2) rather
                                      than the user's text alone */
    bool system_first_only;        /* the template honours a system message only as the first message */
    bool empty_system_turn;        /* an empty system turn opens a conversation that has no system message */
    enum reasoning_drop reasoning;
    enum reasoning_scope reasoning_scope;
} chat_format;

/* DeepSeek's markers use U+FF5C FULLWIDTH VERTICAL LINE and U+2581 LOWER ONE EIGHTH BLOCK. */
#define FW_USER "<\xEF\xBD\x9CUser\xEF\xBD\x9C>"
#define FW_ASSISTANT "<\xEF\xBD\x9C" "Assistant\xEF\xBD\x9C>"
#define FW_EOS "<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>"

static const chat_format formats[] = {
    /* ChatML: Qwen 1.5 to 3, Yi, Hermes, Dolphin, SmolLM, InternLM 2, ... */
    {.name = "chatml",
     .begin = {"<|im_start|>system\n", "<|im_start|>user\n", "<|im_start|>assistant\n"},
     .end = {"<|im_end|>\n", "<|im_end|>\n", "<|im_end|>\n"},
     .assistant_prompt = "<|im_start|>assistant\n"},
    /* ChatML of reasoning models (Qwen3): earlier reasoning dropped */
    {.name = "qwen3",
     .begin = {"<|im_start|>system\n", "<|im_start|>user\n", "<|im_start|>assistant\n"},
     .end = {"<|im_end|>\n", "<|im_end|>\n", "<|im_end|>\n"},
     .assistant_prompt = "<|im_start|>assistant\n", .reasoning = DROP_TO_LAST_THINK_END_NL,
     .reasoning_scope = REPLIES_BEFORE_LAST_USER},
    /* ChatML whose reply opens <think> (QwQ, Qwen3 thinking-only models): earlier reasoning dropped */
    {.name = "chatml-think",
     .begin = {"<|im_start|>system\n", "<|im_start|>user\n", "<|im_start|>assistant\n"},
     .end = {"<|im_end|>\n", "<|im_end|>\n", "<|im_end|>\n"},
     .assistant_prompt = "<|im_start|>assistant\n<think>\n", .reasoning = DROP_TO_LAST_THINK_END_NL,
     .reasoning_scope = REPLIES_BEFORE_LAST_USER},
    /* Llama 2 chat: <<SYS>> block inside the first [INST]; every later user turn reopens with BOS. */
    {.name = "llama2",
     .begin = {"", "[INST] ", " "},
     .end = {"", " [/INST]", " " EOS_MARK},
     .assistant_prompt = "", .default_eos = "</s>",
     .user_turn_bos = "<s>",
     .system = SYSTEM_IN_FIRST_USER, .fold_begin = "<<SYS>>\n", .fold_end = "\n<</SYS>>\n\n",
     .trim = TRIM(ROLE_USER) | TRIM(ROLE_ASSISTANT), .trim_whole_turn = true, .system_first_only = true},
    /* Llama 3, 3.1, 3.2, 3.3 */
    {.name = "llama3",
     .begin = {"<|start_header_id|>system<|end_header_id|>\n\n", "<|start_header_id|>user<|end_header_id|>\n\n",
               "<|start_header_id|>assistant<|end_header_id|>\n\n", "<|start_header_id|>ipython<|end_header_id|>\n\n"},
     .end = {"<|eot_id|>", "<|eot_id|>", "<|eot_id|>", "<|eot_id|>"},
     .assistant_prompt = "<|start_header_id|>assistant<|end_header_id|>\n\n",
     .trim = TRIM(ROLE_SYSTEM) | TRIM(ROLE_USER) | TRIM(ROLE_ASSISTANT)},
    /* Llama 4 */
    {.name = "llama4",
     .begin = {"<|header_start|>system<|header_end|>\n\n", "<|header_start|>user<|header_end|>\n\n",
               "<|header_start|>assistant<|header_end|>\n\n"},
     .end = {"<|eot|>", "<|eot|>", "<|eot|>"},
     .assistant_prompt = "<|header_start|>assistant<|header_end|>\n\n",
     .trim = TRIM(ROLE_SYSTEM), .system_first_only = true},
    /* Mistral 7B Instruct v0.1 / Mixtral's first template: [INST] without leading space, no system support. */
    {.name = "mistral-v0",
     .begin = {"", "[INST] ", ""},
     .end = {"", " [/INST]", EOS_MARK},
     .assistant_prompt = "", .default_eos = "</s>",
     .system = SYSTEM_IN_FIRST_USER, .fold_begin = "", .fold_end = "\n\n", .system_first_only = true},
    /* Mistral's "v1" template (Mistral 7B v0.2, Mixtral 8x7B) */
    {.name = "mistral-v1",
     .begin = {"", " [INST] ", " "},
     .end = {"", " [/INST]", EOS_MARK},
     .assistant_prompt = "", .default_eos = "</s>",
     .system = SYSTEM_IN_FIRST_USER, .fold_begin = "", .fold_end = "\n\n", .system_first_only = true},
    /* Mistral's "v3" template (Mistral 7B v0.3, Mixtral 8x22B, Mistral Large 2407); tool results and definitions
     * as its function-calling template writes them (without the call ids) */
    {.name = "mistral-v3",
     .begin = {"", "[INST] ", " ", "[TOOL_RESULTS] {\"content\": ", "[AVAILABLE_TOOLS] "},
     .end = {"", "[/INST]", EOS_MARK, "}[/TOOL_RESULTS]", "[/AVAILABLE_TOOLS]"},
     .assistant_prompt = "", .default_eos = "</s>",
     .system = SYSTEM_IN_LAST_USER, .fold_begin = "", .fold_end = "\n\n",
     .trim = TRIM(ROLE_ASSISTANT), .system_first_only = true},
    /* Mistral's "v3-tekken" template (Mistral Nemo) */
    {.name = "mistral-v3-tekken",
     .begin = {"", "[INST]", ""},
     .end = {"", "[/INST]", EOS_MARK},
     .assistant_prompt = "", .default_eos = "</s>",
     .system = SYSTEM_IN_LAST_USER, .fold_begin = "", .fold_end = "\n\n", .system_first_only = true},
    /* Mistral's "v7" template (Mistral Large 2411) */
    {.name = "mistral-v7",
     .begin = {"[SYSTEM_PROMPT] ", "[INST] ", " "},
     .end = {"[/SYSTEM_PROMPT]", "[/INST]", EOS_MARK},
     .assistant_prompt = "", .default_eos = "</s>"},
    /* Mistral's "v7-tekken" template (Mistral Small 3, 3.1, 3.2, Magistral, Devstral) */
    {.name = "mistral-v7-tekken",
     .begin = {"[SYSTEM_PROMPT]", "[INST]", ""},
     .end = {"[/SYSTEM_PROMPT]", "[/INST]", EOS_MARK},
     .assistant_prompt = "", .default_eos = "</s>", .system_first_only = true},
    /* Phi-3, Phi-3.5 */
    {.name = "phi3",
     .begin = {"<|system|>\n", "<|user|>\n", "<|assistant|>\n"},
     .end = {"<|end|>\n", "<|end|>\n", "<|end|>\n"},
     .assistant_prompt = "<|assistant|>\n"},
    /* Phi-4 mini: the Phi-3 markers without newlines */
    {.name = "phi4-mini",
     .begin = {"<|system|>", "<|user|>", "<|assistant|>"},
     .end = {"<|end|>", "<|end|>", "<|end|>"},
     .assistant_prompt = "<|assistant|>"},
    /* Phi-4 */
    {.name = "phi4",
     .begin = {"<|im_start|>system<|im_sep|>", "<|im_start|>user<|im_sep|>", "<|im_start|>assistant<|im_sep|>"},
     .end = {"<|im_end|>", "<|im_end|>", "<|im_end|>"},
     .assistant_prompt = "<|im_start|>assistant<|im_sep|>"},
    /* Gemma, Gemma 2, Gemma 3: the assistant is "model"; the system text opens the first user turn (Gemma 3). */
    {.name = "gemma",
     .begin = {"", "<start_of_turn>user\n", "<start_of_turn>model\n"},
     .end = {"", "<end_of_turn>\n", "<end_of_turn>\n"},
     .assistant_prompt = "<start_of_turn>model\n",
     .system = SYSTEM_IN_FIRST_USER, .fold_begin = "", .fold_end = "\n\n",
     .trim = TRIM(ROLE_USER) | TRIM(ROLE_ASSISTANT), .system_first_only = true},
    /* DeepSeek Coder instruct */
    {.name = "deepseek",
     .begin = {"", "### Instruction:\n", "### Response:\n"},
     .end = {"", "\n", "\n<|EOT|>\n"},
     .assistant_prompt = "### Response:\n"},
    /* DeepSeek V2 chat, DeepSeek Coder V2 */
    {.name = "deepseek2",
     .begin = {"", "User: ", "Assistant: "},
     .end = {"\n\n", "\n\n", EOS_MARK},
     .assistant_prompt = "Assistant:", .default_eos = FW_EOS},
    /* DeepSeek V2.5, V3: the system text is written bare before the first user turn. */
    {.name = "deepseek3",
     .begin = {"", FW_USER, FW_ASSISTANT},
     .end = {"", "", FW_EOS},
     .assistant_prompt = FW_ASSISTANT, .system_first_only = true},
    /* DeepSeek R1 and its distilled Qwen / Llama models, current template: earlier reasoning dropped, the reply
     * opens <think>. */
    {.name = "deepseek-r1",
     .begin = {"", FW_USER, FW_ASSISTANT},
     .end = {"", "", FW_EOS},
     .assistant_prompt = FW_ASSISTANT "<think>\n", .system_first_only = true, .reasoning = DROP_TO_LAST_THINK_END},
    /* DeepSeek R1's first template (January 2025): as above, but the reply does not open <think>. */
    {.name = "deepseek-r1-original",
     .begin = {"", FW_USER, FW_ASSISTANT},
     .end = {"", "", FW_EOS},
     .assistant_prompt = FW_ASSISTANT, .system_first_only = true, .reasoning = DROP_TO_LAST_THINK_END},
    /* DeepSeek V3.1 with thinking off (the template's default) */
    {.name = "deepseek-v3.1",
     .begin = {"", FW_USER, FW_ASSISTANT "</think>"},
     .end = {"", "", FW_EOS},
     .assistant_prompt = FW_ASSISTANT "</think>", .system_first_only = true, .reasoning = DROP_TO_FIRST_THINK_END},
    /* Zephyr, TinyLlama chat: every turn ends with EOS */
    {.name = "zephyr",
     .begin = {"<|system|>\n", "<|user|>\n", "<|assistant|>\n"},
     .end = {EOS_MARK "\n", EOS_MARK "\n", EOS_MARK "\n"},
     .assistant_prompt = "<|assistant|>\n", .default_eos = "</s>"},
    /* Tulu 3, OLMo 2: like zephyr, but only the assistant's turns end with EOS */
    {.name = "tulu",
     .begin = {"<|system|>\n", "<|user|>\n", "<|assistant|>\n"},
     .end = {"\n", "\n", EOS_MARK "\n"},
     .assistant_prompt = "<|assistant|>\n", .default_eos = "<|endoftext|>"},
    /* Vicuna 1.1 */
    {.name = "vicuna",
     .begin = {"", "USER: ", "ASSISTANT: "},
     .end = {"\n\n", "\n", "</s>\n"},
     .assistant_prompt = "ASSISTANT:"},
    /* Vicuna with a SYSTEM: line (Orca-style fine-tunes) */
    {.name = "vicuna-orca",
     .begin = {"SYSTEM: ", "USER: ", "ASSISTANT: "},
     .end = {"\n", "\n", "</s>\n"},
     .assistant_prompt = "ASSISTANT:"},
    /* Command R, Command R+, Aya */
    {.name = "command-r",
     .begin = {"<|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|>", "<|START_OF_TURN_TOKEN|><|USER_TOKEN|>",
               "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>"},
     .end = {"<|END_OF_TURN_TOKEN|>", "<|END_OF_TURN_TOKEN|>", "<|END_OF_TURN_TOKEN|>"},
     .assistant_prompt = "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>",
     .trim = TRIM(ROLE_USER) | TRIM(ROLE_ASSISTANT), .system_first_only = true},
    /* OpenChat 3.5 */
    {.name = "openchat",
     .begin = {"GPT4 Correct System: ", "GPT4 Correct User: ", "GPT4 Correct Assistant: "},
     .end = {"<|end_of_turn|>", "<|end_of_turn|>", "<|end_of_turn|>"},
     .assistant_prompt = "GPT4 Correct Assistant:"},
    /* IBM Granite 3.x, 4 */
    {.name = "granite",
     .begin = {"<|start_of_role|>system<|end_of_role|>", "<|start_of_role|>user<|end_of_role|>",
               "<|start_of_role|>assistant<|end_of_role|>"},
     .end = {"<|end_of_text|>\n", "<|end_of_text|>\n", "<|end_of_text|>\n"},
     .assistant_prompt = "<|start_of_role|>assistant<|end_of_role|>"},
    /* EXAONE 3.0, 3.5 */
    {.name = "exaone3",
     .begin = {"[|system|]", "[|user|]", "[|assistant|]"},
     .end = {"[|endofturn|]\n", "\n", "[|endofturn|]\n"},
     .assistant_prompt = "[|assistant|]", .empty_system_turn = true},
};

enum { FORMAT_COUNT = sizeof formats / sizeof formats[0] };

/* Other spellings accepted by tnd_chat_template_lookup. */
static const struct {
    const char *alias, *name;
} aliases[] = {
    {"qwen", "chatml"},     {"qwq", "chatml-think"},         {"llama-2", "llama2"},   {"llama-3", "llama3"},
    {"llama-4", "llama4"},  {"phi-3", "phi3"},               {"phi-4", "phi4"},       {"gemma2", "gemma"},
    {"gemma3", "gemma"},    {"deepseek-v3", "deepseek3"},    {"olmo2", "tulu"},       {"exaone", "exaone3"},
};

/* ---------------------------------------------------------------------------------------------------------------
 * Recognition
 * ------------------------------------------------------------------------------------------------------------- */

/* One recognition rule: the template must contain every string of all_of and none of none_of. Rules are tried in
 * order and the first match wins, so a more specific rule comes before a more general one of the same family. The
 * strings are pieces of the templates' Jinja source: "\\n" there is the two characters backslash and n. */
typedef struct detect_rule {
    const char *format;
    const char *all_of[4];
    const char *none_of[2];
} detect_rule;

static const detect_rule rules[] = {
    {"phi4", {"<|im_start|>", "<|im_sep|>"}, {NULL}},
    {"chatml-think", {"<|im_start|>assistant\\n<think>"}, {NULL}},
    {"chatml-think", {"<|im_start|>assistant\n<think>"}, {NULL}},
    {"qwen3", {"<|im_start|>", "</think>"}, {NULL}},
    /* SmolVLM opens with <|im_start|> but is not ChatML */
    {"chatml", {"<|im_start|>"}, {"<end_of_utterance>"}},
    {"mistral-v7", {"[SYSTEM_PROMPT] ", "[INST]"}, {NULL}},
    {"mistral-v7-tekken", {"[SYSTEM_PROMPT]", "[INST]"}, {NULL}},
    {"mistral-v1", {"' [INST] '"}, {NULL}},
    {"mistral-v3-tekken", {"\"[INST]\" +"}, {NULL}},
    {"mistral-v3-tekken", {"'[INST]' +"}, {NULL}},
    {"mistral-v3", {"+ \"[/INST]\""}, {NULL}},
    {"mistral-v3", {"+ '[/INST]'"}, {NULL}},
    {"llama2", {"[INST]", "<<SYS>>"}, {NULL}},
    {"mistral-v0", {"[INST]", "[/INST]"}, {NULL}},
    {"llama3", {"<|start_header_id|>", "<|end_header_id|>"}, {NULL}},
    {"llama4", {"<|header_start|>", "<|header_end|>"}, {NULL}},
    {"phi4-mini", {"|>' + message['content'] + '<|end|>'"}, {NULL}},
    {"phi3", {"<|assistant|>", "<|end|>"}, {NULL}},
    /* ChatGLM / GLM-Edge use <|user|> and <|assistant|> too, but without EOS after a turn */
    {"tulu", {"<|user|>", "<|assistant|>", "eos_token + '"}, {"[gMASK]"}},
    {"zephyr", {"<|user|>", "<|assistant|>", "eos_token"}, {"[gMASK]"}},
    {"gemma", {"<start_of_turn>"}, {NULL}},
    {"openchat", {"GPT4 Correct "}, {NULL}},
    {"vicuna-orca", {"USER: ", "ASSISTANT: ", "SYSTEM: "}, {NULL}},
    {"vicuna", {"USER: ", "ASSISTANT: "}, {NULL}},
    {"deepseek", {"### Instruction:", "<|EOT|>"}, {NULL}},
    /* Command R7B marks replies with <|START_RESPONSE|> and is a different format */
    {"command-r", {"<|START_OF_TURN_TOKEN|>", "<|USER_TOKEN|>"}, {"<|START_RESPONSE|>"}},
    {"deepseek2", {"'Assistant: ' + message['content'] + eos_token"}, {NULL}},
    {"deepseek-v3.1", {FW_USER, FW_ASSISTANT "</think>"}, {NULL}},
    {"deepseek-r1", {FW_USER, FW_ASSISTANT "<think>", FW_EOS}, {NULL}},
    {"deepseek-r1-original", {FW_USER, FW_ASSISTANT, FW_EOS, "</think>"}, {NULL}},
    {"deepseek3", {FW_USER, FW_ASSISTANT, FW_EOS}, {NULL}},
    /* Granite 3.2 vision writes <|user|> turns and is a different format */
    {"granite", {"<|start_of_role|>", "<|end_of_role|>"}, {"<|user|>"}},
    /* EXAONE Deep reasons inside <thought> and is a different format */
    {"exaone3", {"[|system|]", "[|assistant|]", "[|endofturn|]"}, {"<thought>"}},
};

/* Whether the n bytes at text contain the NUL-terminated needle. */
static bool contains(const char *text, size_t n, const char *needle) {
    size_t m = strlen(needle);
    if (m == 0) return true;
    for (size_t i = 0; m <= n - i;) {
        const char *hit = memchr(text + i, needle[0], n - i - m + 1);
        if (!hit) return false;
        if (memcmp(hit, needle, m) == 0) return true;
        i = (size_t)(hit - text) + 1;
    }
    return false;
}

static bool rule_matches(const detect_rule *r, const char *text, size_t n) {
    for (size_t i = 0; i < sizeof r->all_of / sizeof r->all_of[0] && r->all_of[i]; i++)
        if (!contains(text, n, r->all_of[i])) return false;
    for (size_t i = 0; i < sizeof r->none_of / sizeof r->none_of[0] && r->none_of[i]; i++)
        if (contains(text, n, r->none_of[i])) return false;
    return true;
}

static const chat_format *find_format(const char *name) {
    for (size_t i = 0; i < FORMAT_COUNT; i++)
        if (strcmp(formats[i].name, name) == 0) return &formats[i];
    return NULL;
}

/* "chatml, llama2, ..." into out (truncated to cap, always terminated). */
static const char *format_names(char *out, size_t cap) {
    size_t len = 0;
    out[0] = 0;
    for (size_t i = 0; i < FORMAT_COUNT && len + 1 < cap; i++) {
        int w = snprintf(out + len, cap - len, "%s%s", i ? ", " : "", formats[i].name);
        if (w < 0) break;
        len += (size_t)w;
    }
    return out;
}

size_t tnd_chat_template_count(void) { return FORMAT_COUNT; }

const char *tnd_chat_template_name(size_t index) { return index < FORMAT_COUNT ? formats[index].name : NULL; }

static bool ascii_equal_nocase(const char *a, const char *b) {
    for (; *a && *b; a++, b++) {
        char ca = (*a >= 'A' && *a <= 'Z') ? (char)(*a - 'A' + 'a') : *a;
        char cb = (*b >= 'A' && *b <= 'Z') ? (char)(*b - 'A' + 'a') : *b;
        if (ca != cb) return false;
    }
    return *a == *b;
}

tnd_status tnd_chat_template_lookup(const char *name, const char **canonical) {
    if (!name || !canonical) return tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_chat_template_lookup: NULL argument");
    *canonical = NULL;
    for (size_t i = 0; i < FORMAT_COUNT; i++)
        if (ascii_equal_nocase(formats[i].name, name)) {
            *canonical = formats[i].name;
            return TND_OK;
        }
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
        if (ascii_equal_nocase(aliases[i].alias, name)) {
            const chat_format *f = find_format(aliases[i].name);
            if (!f) return tnd_fail(TND_ERR_INTERNAL, "chat template alias '%s' names no format", aliases[i].alias);
            *canonical = f->name;
            return TND_OK;
        }
    char names[512];
    return tnd_fail(TND_ERR_NOT_FOUND, "unknown chat template name '%.64s'; known: %s", name,
                    format_names(names, sizeof names));
}

tnd_status tnd_chat_template_detect(const char *jinja, size_t len, const char **name) {
    if (!name || (!jinja && len)) return tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_chat_template_detect: NULL argument");
    *name = NULL;
    if (!jinja) jinja = "";
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++) {
        if (!rule_matches(&rules[i], jinja, len)) continue;
        const chat_format *f = find_format(rules[i].format);
        if (!f) return tnd_fail(TND_ERR_INTERNAL, "chat template rule %zu names no format ('%s')", i, rules[i].format);
        *name = f->name;
        return TND_OK;
    }
    char names[512];
    return tnd_fail(TND_ERR_UNSUPPORTED,
                    "chat template not recognised (%zu bytes, starting \"%.*s\"); choose one by name, known: %s", len,
                    (int)(len < 40 ? len : 40), jinja, format_names(names, sizeof names));
}

tnd_status tnd_model_chat_template(const tnd_model *model, const char **name) {
    if (!model || !name) return tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_model_chat_template: NULL argument");
    *name = NULL;
    const char *jinja = NULL;
    size_t len = 0;
    tnd_status st = tnd_model_meta_string(model, "tokenizer.chat_template", &jinja, &len);
    if (st == TND_ERR_NOT_FOUND) {
        char names[512];
        return tnd_fail(TND_ERR_NOT_FOUND,
                        "the model has no tokenizer.chat_template; choose a chat template by name, known: %s",
                        format_names(names, sizeof names));
    }
    if (st) return st;
    return tnd_chat_template_detect(jinja, len, name);
}

/* ---------------------------------------------------------------------------------------------------------------
 * Rendering
 * ------------------------------------------------------------------------------------------------------------- */

/* The prompt being written: bytes go into buf while they fit (one byte stays free for the terminating NUL);
 * len counts every byte, so a too small buffer still yields the full length. */
typedef struct prompt_sink {
    char *buf;
    uint8_t *marks; /* optional, beside buf: 1 for each byte the format wrote, 0 for a message's content */
    size_t cap;
    size_t len;
    bool overflow; /* the length does not fit in size_t */
} prompt_sink;

static void sink_put(prompt_sink *s, const char *p, size_t n, bool marker) {
    if (s->overflow || n == 0) return;
    if (s->cap && s->len < s->cap - 1) {
        size_t room = s->cap - 1 - s->len, k = n < room ? n : room;
        memcpy(s->buf + s->len, p, k);
        if (s->marks) memset(s->marks + s->len, marker, k);
    }
    if (n > SIZE_MAX - s->len) s->overflow = true;
    else s->len += n;
}

/* Writes text of a message's content. */
static void sink_write(prompt_sink *s, const char *p, size_t n) { sink_put(s, p, n, false); }

/* Writes a marker string of the format table, with every EOS_MARK replaced by eos. */
static void sink_put_marker(prompt_sink *s, const char *marker, const char *eos) {
    for (const char *hit; (hit = strstr(marker, EOS_MARK)) != NULL; marker = hit + strlen(EOS_MARK)) {
        sink_put(s, marker, (size_t)(hit - marker), true);
        sink_put(s, eos, strlen(eos), true);
    }
    sink_put(s, marker, strlen(marker), true);
}

typedef struct text_span {
    const char *ptr;
    size_t len;
    bool marker; /* written by the format, not a message's content */
} text_span;

/* Whitespace as Python's str.isspace() (what Jinja's trim filter and str.strip() remove): ASCII \t \n \v \f \r,
 * \x1c-\x1f and space, and U+0085, U+00A0, U+1680, U+2000-U+200A, U+2028, U+2029, U+202F, U+205F, U+3000. */
static bool is_space_codepoint(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

/* Decodes the well-formed 1..3 byte UTF-8 sequence at p (n bytes available); 0 if there is none. Every whitespace
 * character is at most 3 bytes long, so longer sequences never need decoding here. */
static size_t decode_short_utf8(const unsigned char *p, size_t n, uint32_t *cp) {
    if (n >= 1 && p[0] < 0x80) {
        *cp = p[0];
        return 1;
    }
    if (n >= 2 && p[0] >= 0xC2 && p[0] < 0xE0 && (p[1] & 0xC0) == 0x80) {
        *cp = ((uint32_t)(p[0] & 0x1F) << 6) | (p[1] & 0x3F);
        return 2;
    }
    if (n >= 3 && (p[0] & 0xF0) == 0xE0 && (p[1] & 0xC0) == 0x80 && (p[2] & 0xC0) == 0x80) {
        *cp = ((uint32_t)(p[0] & 0x0F) << 12) | ((uint32_t)(p[1] & 0x3F) << 6) | (p[2] & 0x3F);
        return *cp >= 0x800 ? 3 : 0;
    }
    return 0;
}

/* Bytes of the whitespace character that starts the span, or 0. */
static size_t leading_space(text_span s) {
    uint32_t cp;
    size_t k = decode_short_utf8((const unsigned char *)s.ptr, s.len, &cp);
    return k && is_space_codepoint(cp) ? k : 0;
}

/* Bytes of the whitespace character that ends the span, or 0. */
static size_t trailing_space(text_span s) {
    for (size_t k = 1; k <= 3 && k <= s.len; k++) {
        uint32_t cp;
        if (decode_short_utf8((const unsigned char *)s.ptr + s.len - k, k, &cp) == k)
            return is_space_codepoint(cp) ? k : 0;
    }
    return 0;
}

/* Writes the concatenation of n spans, stripped of leading and trailing whitespace as one string: stripping goes on
 * into the next span when a span is all whitespace. */
static void sink_write_stripped(prompt_sink *sink, text_span *spans, size_t n) {
    size_t first = 0, last = n;
    while (first < last) {
        size_t k = leading_space(spans[first]);
        if (k) {
            spans[first].ptr += k;
            spans[first].len -= k;
        } else if (spans[first].len == 0) {
            first++;
        } else {
            break;
        }
    }
    while (last > first) {
        size_t k = trailing_space(spans[last - 1]);
        if (k) spans[last - 1].len -= k;
        else if (spans[last - 1].len == 0) last--;
        else break;
    }
    for (size_t i = first; i < last; i++) sink_put(sink, spans[i].ptr, spans[i].len, spans[i].marker);
}

/* The reply without the reasoning that precedes "</think>" (the last or the first one, as the format says). */
static text_span drop_reasoning(text_span reply, enum reasoning_drop how) {
    static const char marker[] = "</think>";
    const size_t m = sizeof marker - 1;
    if (how == KEEP_REASONING) return reply;
    const char *cut = NULL;
    for (const char *p = reply.ptr; (p = strstr(p, marker)) != NULL; p += m) {
        cut = p + m;
        if (how == DROP_TO_FIRST_THINK_END) break;
    }
    if (!cut) return reply;
    if (how == DROP_TO_LAST_THINK_END_NL)
        while (*cut == '\n') cut++;
    return (text_span){cut, reply.len - (size_t)(cut - reply.ptr), false};
}

static int parse_role(const char *role) {
    for (int r = 0; r < ROLE_COUNT; r++)
        if (strcmp(role, role_names[r]) == 0) return r;
    return -1;
}

/* Checks the messages against the format and finds where a folded system message goes: *system_index is the
 * message holding it (SIZE_MAX: none to fold), *fold_target the user message that carries it (SIZE_MAX: none; then
 * the system text is written as a user turn of its own). roles[i] receives each message's role. */
static tnd_status plan_messages(const chat_format *f, const tnd_chat_message *messages, size_t n, int *roles,
                                size_t *system_index, size_t *fold_target) {
    *system_index = SIZE_MAX;
    *fold_target = SIZE_MAX;
    for (size_t i = 0; i < n; i++) {
        if (!messages[i].role || !messages[i].content)
            return tnd_fail(TND_ERR_INVALID_ARGUMENT, "chat message %zu has a NULL %s", i,
                            messages[i].role ? "content" : "role");
        roles[i] = parse_role(messages[i].role);
        if (roles[i] < 0)
            return tnd_fail(TND_ERR_INVALID_ARGUMENT,
                            "chat message %zu has role '%.32s'; the chat templates take only system, user, "
                            "assistant, tool and tools",
                            i, messages[i].role);
        if (roles[i] == ROLE_TOOLS && !f->begin[ROLE_TOOLS])
            return tnd_fail(TND_ERR_INVALID_ARGUMENT,
                            "chat message %zu holds tool definitions; chat template '%s' has no place for them", i,
                            f->name);
        if (roles[i] == ROLE_SYSTEM && i > 0 && (f->system_first_only || f->system != SYSTEM_AS_TURN))
            return tnd_fail(TND_ERR_INVALID_ARGUMENT,
                            "chat message %zu is a system message; chat template '%s' takes one only as the first "
                            "message",
                            i, f->name);
    }
    if (f->system == SYSTEM_AS_TURN || n == 0 || roles[0] != ROLE_SYSTEM) return TND_OK;
    *system_index = 0;
    for (size_t i = 1; i < n; i++) {
        if (roles[i] != ROLE_USER) continue;
        *fold_target = i;
        if (f->system == SYSTEM_IN_FIRST_USER) break;
    }
    return TND_OK;
}

/* Writes the content of a user turn that carries the folded system text (system may be NULL: an ordinary user
 * turn), or the system text alone when user is NULL. */
static void write_folded_user(prompt_sink *sink, const chat_format *f, const char *system, const char *user) {
    text_span spans[4];
    size_t n = 0;
    if (system) {
        spans[n++] = (text_span){f->fold_begin, strlen(f->fold_begin), true};
        spans[n++] = (text_span){system, strlen(system), false};
        spans[n++] = (text_span){f->fold_end, strlen(f->fold_end), true};
    }
    text_span user_text = {user ? user : "", user ? strlen(user) : 0, false};
    if (!(f->trim & TRIM(ROLE_USER))) {
        for (size_t i = 0; i < n; i++) sink_put(sink, spans[i].ptr, spans[i].len, spans[i].marker);
        sink_write(sink, user_text.ptr, user_text.len);
    } else if (f->trim_whole_turn) {
        spans[n++] = user_text;
        sink_write_stripped(sink, spans, n);
    } else {
        for (size_t i = 0; i < n; i++) sink_put(sink, spans[i].ptr, spans[i].len, spans[i].marker);
        sink_write_stripped(sink, &user_text, 1);
    }
}

/* Writes the content of a message that is not folded: reasoning dropped (from replies before the last user message,
 * or from all, as the format says) and whitespace stripped as the format says. */
static void write_content(prompt_sink *sink, const chat_format *f, int role, const char *content,
                          bool before_last_user) {
    text_span text = {content, strlen(content), false};
    if (role == ROLE_ASSISTANT && (before_last_user || f->reasoning_scope == EVERY_REPLY))
        text = drop_reasoning(text, f->reasoning);
    if (f->trim & TRIM(role)) sink_write_stripped(sink, &text, 1);
    else sink_write(sink, text.ptr, text.len);
}

/* Renders the conversation into the sink (its buffer may be too small: sink->len still counts every byte). */
static tnd_status render(const char *name, const tnd_chat_message *messages, size_t n_messages, int add_assistant,
                         const char *eos_text, prompt_sink *sink) {
    tnd_status st = TND_OK;
    int roles_small[64];
    int *roles = roles_small;
    const char *canonical = NULL;
    st = tnd_chat_template_lookup(name, &canonical);
    if (st) return st;
    const chat_format *f = find_format(canonical);
    const char *eos = eos_text ? eos_text : f->default_eos ? f->default_eos : "";
    if (n_messages > sizeof roles_small / sizeof roles_small[0]) {
        roles = tnd_alloc_array(NULL, n_messages, sizeof *roles);
        if (!roles) return tnd_fail(TND_ERR_OUT_OF_MEMORY, "chat template: %zu messages", n_messages);
    }
    size_t system_index, fold_target;
    st = plan_messages(f, messages, n_messages, roles, &system_index, &fold_target);
    if (st) goto cleanup;

    size_t last_user = SIZE_MAX, tools = SIZE_MAX;
    for (size_t i = 0; i < n_messages; i++) {
        if (roles[i] == ROLE_USER) last_user = i;
        if (roles[i] == ROLE_TOOLS) tools = i;
    }

    if (f->empty_system_turn && (n_messages == 0 || roles[0] != ROLE_SYSTEM)) {
        sink_put_marker(sink, f->begin[ROLE_SYSTEM], eos);
        sink_put_marker(sink, f->end[ROLE_SYSTEM], eos);
    }
    for (size_t i = 0; i < n_messages; i++) {
        int role = roles[i];
        if (role == ROLE_TOOLS) continue; /* written before the last user turn */
        if (i == last_user && tools != SIZE_MAX) {
            sink_put_marker(sink, f->begin[ROLE_TOOLS], eos);
            sink_write(sink, messages[tools].content, strlen(messages[tools].content));
            sink_put_marker(sink, f->end[ROLE_TOOLS], eos);
        }
        if (role == ROLE_TOOL && !f->begin[ROLE_TOOL]) { /* a user turn holding the result */
            if (f->user_turn_bos && sink->len > 0) sink_put_marker(sink, f->user_turn_bos, eos);
            sink_put_marker(sink, f->begin[ROLE_USER], eos);
            sink_put_marker(sink, TOOL_RESPONSE_BEGIN, eos);
            sink_write(sink, messages[i].content, strlen(messages[i].content));
            sink_put_marker(sink, TOOL_RESPONSE_END, eos);
            sink_put_marker(sink, f->end[ROLE_USER], eos);
            continue;
        }
        if (i == system_index) {
            if (fold_target != SIZE_MAX) continue; /* written inside its user turn */
            role = ROLE_USER;                       /* no user turn to carry it: a user turn of its own */
        }
        if (role == ROLE_USER && f->user_turn_bos && sink->len > 0) sink_put_marker(sink, f->user_turn_bos, eos);
        sink_put_marker(sink, f->begin[role], eos);
        if (i == system_index)
            write_folded_user(sink, f, messages[i].content, NULL);
        else if (role == ROLE_USER && f->system != SYSTEM_AS_TURN)
            write_folded_user(sink, f, i == fold_target ? messages[system_index].content : NULL, messages[i].content);
        else
            write_content(sink, f, role, messages[i].content, last_user != SIZE_MAX && i < last_user);
        sink_put_marker(sink, f->end[role], eos);
    }
    if (add_assistant) sink_put_marker(sink, f->assistant_prompt, eos);
    if (sink->overflow) st = tnd_fail(TND_ERR_INVALID_ARGUMENT, "chat template: the prompt is longer than SIZE_MAX");
cleanup:
    if (roles != roles_small) tnd_free(NULL, roles);
    return st;
}

tnd_status tnd_chat_template_apply(const char *name, const tnd_chat_message *messages, size_t n_messages,
                                   int add_assistant, const char *eos_text, char *buf, size_t buf_size,
                                   size_t *needed) {
    if (!name || !needed || (!messages && n_messages) || (!buf && buf_size))
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_chat_template_apply: NULL argument");
    *needed = 0;
    prompt_sink sink = {.buf = buf, .cap = buf_size};
    tnd_status st = render(name, messages, n_messages, add_assistant, eos_text, &sink);
    if (buf_size) buf[sink.len < buf_size ? sink.len : buf_size - 1] = 0;
    if (st) return st;
    *needed = sink.len;
    if (sink.len >= buf_size)
        return tnd_fail(TND_ERR_BUFFER_TOO_SMALL,
                        "chat prompt needs %zu bytes plus the terminating NUL, buffer has %zu", sink.len, buf_size);
    return TND_OK;
}

int32_t tnd_chat_encode(const tnd_tokenizer *tok, const char *name, const tnd_chat_message *messages, size_t n_messages,
                        int add_assistant, const char *eos_text, uint32_t flags, int32_t *tokens, int32_t cap) {
    if (!tok || !name || (!messages && n_messages) || cap < 0 || (!tokens && cap > 0)) {
        tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_chat_encode: NULL argument or a bad buffer");
        return TND_TOKENIZE_ERROR;
    }
    if (flags & ~(TND_TOKENIZE_ADD_SPECIAL | TND_CHAT_CONTENT_SPECIAL)) {
        tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_chat_encode: unknown flags 0x%x", flags);
        return TND_TOKENIZE_ERROR;
    }
    prompt_sink sink = {0};
    tnd_status st = render(name, messages, n_messages, add_assistant, eos_text, &sink); /* the size */
    if (st) return TND_TOKENIZE_ERROR;
    if (sink.len > TND_TOKENIZE_MAX_TEXT) {
        tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_chat_encode: a prompt of %zu bytes is longer than the limit of %zu",
                 sink.len, TND_TOKENIZE_MAX_TEXT);
        return TND_TOKENIZE_ERROR;
    }
    size_t len = sink.len;
    sink = (prompt_sink){.buf = tnd_alloc(NULL, len + 1), .marks = tnd_alloc(NULL, len + 1), .cap = len + 1};
    int32_t n = TND_TOKENIZE_ERROR;
    if (!sink.buf || !sink.marks) {
        tnd_fail(TND_ERR_OUT_OF_MEMORY, "tnd_chat_encode: out of memory for a prompt of %zu bytes", len);
    } else if (!render(name, messages, n_messages, add_assistant, eos_text, &sink)) {
        uint32_t encode_flags = TND_TOKENIZE_PARSE_SPECIAL | (flags & TND_TOKENIZE_ADD_SPECIAL);
        n = tnd_tokenizer_encode_marked(tok, sink.buf, len, (flags & TND_CHAT_CONTENT_SPECIAL) ? NULL : sink.marks,
                                        encode_flags, tokens, cap);
    }
    tnd_free(NULL, sink.buf);
    tnd_free(NULL, sink.marks);
    return n;
}

/* pretokenize.c: the table of pre-tokenizers (tokenizer.ggml.pre -> regexes, as the original tokenizers define
 * them), their compilation with PCRE2, the split loop, and NFC normalization through utf8proc. */
#include "text/pretokenize.h"

#include "core/alloc.h"
#include "core/error.h"
#include "text/text_util.h"

#include <utf8proc.h>

#include <string.h>

/* ---------------------------------------------------------------------------------------------------------------
 * The regexes. These are facts of the original tokenizers (their tokenizer.json "Split"/"ByteLevel" steps); PCRE2
 * runs them as written, with Unicode properties, case-insensitive groups and look-ahead.
 * ------------------------------------------------------------------------------------------------------------- */

/* GPT-2's ByteLevel regex (also GPT-NeoX, MPT, OLMo, Phi-2, and the second step of StarCoder-style tokenizers). */
#define RE_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"

/* Llama 3 (tiktoken cl100k-style): case-insensitive contractions, numbers in groups of up to three. */
#define RE_LLAMA3                                                                                                   \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"         \
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

/* Qwen 2: as Llama 3 but one digit per piece. */
#define RE_QWEN2                                                                                                    \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"              \
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

/* Letters split by case the way o200k does: an upper-case run may lead a lower-case run. */
#define RE_CASED_WORD_UPPER_FIRST "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+"
#define RE_CASED_WORD_UPPER_RUN "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*"
#define RE_CONTRACTIONS_OPT "(?i:'s|'t|'re|'ve|'m|'ll|'d)?"

/* Mistral's tekken (Mistral Nemo and later). */
#define RE_TEKKEN                                                                                                   \
    RE_CASED_WORD_UPPER_FIRST "|" RE_CASED_WORD_UPPER_RUN "|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|"                \
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

/* GPT-4o (o200k) and Llama 4. */
#define RE_GPT4O                                                                                                    \
    RE_CASED_WORD_UPPER_FIRST RE_CONTRACTIONS_OPT "|" RE_CASED_WORD_UPPER_RUN RE_CONTRACTIONS_OPT                   \
    "|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

/* DeepSeek LLM: cased letters as listed by its tokenizer (Unicode's cased-letter ranges). */
#define RE_DEEPSEEK_CASED_LETTERS                                                                                   \
    "A-Za-z\\x{B5}\\x{C0}-\\x{D6}\\x{D8}-\\x{F6}\\x{F8}-\\x{1BA}\\x{1BC}-\\x{1BF}\\x{1C4}-\\x{293}\\x{295}-\\x{2AF}"  \
    "\\x{370}-\\x{373}\\x{376}\\x{377}\\x{37B}-\\x{37D}\\x{37F}\\x{386}\\x{388}-\\x{38A}\\x{38C}\\x{38E}-\\x{3A1}"    \
    "\\x{3A3}-\\x{3F5}\\x{3F7}-\\x{481}\\x{48A}-\\x{52F}\\x{531}-\\x{556}\\x{10A0}-\\x{10C5}\\x{13A0}-\\x{13F5}"      \
    "\\x{13F8}-\\x{13FD}\\x{1C90}-\\x{1CBA}\\x{1CBD}-\\x{1CBF}\\x{1D00}-\\x{1D2B}\\x{1D6B}-\\x{1D77}"                 \
    "\\x{1D79}-\\x{1D9A}\\x{1E00}-\\x{1F15}\\x{1F18}-\\x{1F1D}\\x{1F20}-\\x{1F45}\\x{1F48}-\\x{1F4D}"                 \
    "\\x{1F50}-\\x{1F57}\\x{1F59}\\x{1F5B}\\x{1F5D}\\x{1F5F}-\\x{1F7D}\\x{1F80}-\\x{1FB4}\\x{1FB6}-\\x{1FBC}"         \
    "\\x{1FBE}\\x{1FC2}-\\x{1FC4}\\x{1FC6}-\\x{1FCC}\\x{1FD0}-\\x{1FD3}\\x{1FD6}-\\x{1FDB}\\x{1FE0}-\\x{1FEC}"        \
    "\\x{1FF2}-\\x{1FF4}\\x{1FF6}-\\x{1FFC}\\x{2102}\\x{2107}\\x{210A}-\\x{2113}\\x{2115}\\x{2119}-\\x{211D}"         \
    "\\x{2124}\\x{2126}\\x{2128}\\x{212A}-\\x{212D}\\x{212F}-\\x{2134}\\x{2139}\\x{213C}-\\x{213F}"                  \
    "\\x{2145}-\\x{2149}\\x{214E}\\x{2183}\\x{2184}\\x{2C00}-\\x{2C7B}\\x{2C7E}-\\x{2CE4}\\x{2CEB}-\\x{2CEE}"         \
    "\\x{2CF2}\\x{2CF3}\\x{A640}-\\x{A66D}\\x{A680}-\\x{A69B}\\x{A722}-\\x{A76F}\\x{A771}-\\x{A787}"                  \
    "\\x{A78B}-\\x{A78E}\\x{AB70}-\\x{ABBF}\\x{FB00}-\\x{FB06}\\x{FB13}-\\x{FB17}\\x{FF21}-\\x{FF3A}"                 \
    "\\x{FF41}-\\x{FF5A}\\x{10400}-\\x{1044F}\\x{104B0}-\\x{104D3}\\x{104D8}-\\x{104FB}\\x{10C80}-\\x{10CB2}"        \
    "\\x{10CC0}-\\x{10CF2}\\x{118A0}-\\x{118DF}\\x{1E900}-\\x{1E943}"

/* CJK ideographs (U+4E00..U+9FA5), the blocks from U+0800 up to them, and Hangul syllables/Jamo extensions. */
#define RE_DEEPSEEK_CJK "[\\x{4E00}-\\x{9FA5}\\x{0800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+"

/* Text split on these characters and on whitespace (Bloom-style multilingual tokenizers). */
#define RE_BLOOM " ?[^(\\s|.,!?\\x{2026}\\x{3002}\\x{FF0C}\\x{3001}\\x{0964}\\x{06D4}\\x{060C})]+"

static const tnd_pretok_def pretok_defs[] = {
    /* GPT-2 and the tokenizers that reuse its ByteLevel regex. */
    {.name = "gpt-2", .regexes = {RE_GPT2}},
    {.name = "phi-2", .regexes = {RE_GPT2}},
    {.name = "jais", .regexes = {RE_GPT2}},
    /* GPT-NeoX-based tokenizers normalize to NFC first. */
    {.name = "mpt", .regexes = {RE_GPT2}, .nfc = true},
    {.name = "olmo", .regexes = {RE_GPT2}, .nfc = true},
    /* Older conversions without a specific pre-tokenizer: punctuation runs, GPT-2 words, digit runs, triples. */
    {.name = "default",
     .regexes = {"[\\p{P}\\$\\+<=>\\^~\\|]+", RE_GPT2, "\\p{N}+", "[0-9][0-9][0-9]"}},
    /* Llama 3 family. */
    {.name = "llama-bpe", .regexes = {RE_LLAMA3}, .ignore_merges = true, .add_bos = true},
    {.name = "llama3", .regexes = {RE_LLAMA3}, .ignore_merges = true, .add_bos = true},
    {.name = "llama-v3", .regexes = {RE_LLAMA3}, .ignore_merges = true, .add_bos = true},
    {.name = "falcon3", .regexes = {RE_LLAMA3}, .ignore_merges = true, .add_bos = true},
    {.name = "pixtral", .regexes = {RE_LLAMA3}, .ignore_merges = true, .add_bos = true},
    {.name = "dbrx", .regexes = {RE_LLAMA3}},
    {.name = "smaug-bpe", .regexes = {RE_LLAMA3}},
    /* Qwen 2 / 2.5 / 3 and the DeepSeek-R1 distillations built on them. */
    {.name = "qwen2", .regexes = {RE_QWEN2}, .nfc = true},
    {.name = "deepseek-r1-qwen", .regexes = {RE_QWEN2}, .nfc = true},
    {.name = "stablelm2", .regexes = {RE_QWEN2}},
    /* DeepSeek. */
    {.name = "deepseek-llm",
     .regexes = {"[\\r\\n]", "\\s?[" RE_DEEPSEEK_CASED_LETTERS "]+",
                 "\\s?[!-/:-~\\x{FF01}-\\x{FF0F}\\x{FF1A}-\\x{FF5E}\\x{2018}-\\x{201F}\\x{3000}-\\x{3002}]+",
                 "\\s+$", RE_DEEPSEEK_CJK, "\\p{N}+"}},
    {.name = "deepseek-coder", .regexes = {"[\\r\\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", RE_DEEPSEEK_CJK, "\\p{N}"}},
    {.name = "deepseek-v3",
     .regexes = {"\\p{N}{1,3}", "[\\x{4E00}-\\x{9FA5}\\x{3040}-\\x{309F}\\x{30A0}-\\x{30FF}]+",
                 "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\\r\\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+|"
                 " ?[\\p{P}\\p{S}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}},
    /* Falcon: ASCII-or-Unicode punctuation runs, GPT-2 words, then digit triples. */
    {.name = "falcon", .regexes = {"[\\p{P}\\$\\+<=>\\^~\\|`]+", RE_GPT2, "[0-9][0-9][0-9]"}},
    /* StarCoder-style: every digit alone, then GPT-2 words. */
    {.name = "starcoder", .regexes = {"\\p{N}", RE_GPT2}},
    {.name = "refact", .regexes = {"\\p{N}", RE_GPT2}},
    {.name = "command-r", .regexes = {"\\p{N}", RE_GPT2}, .nfc = true},
    {.name = "smollm", .regexes = {"\\p{N}", RE_GPT2}},
    {.name = "codeshell", .regexes = {"\\p{N}", RE_GPT2}},
    {.name = "exaone", .regexes = {"\\p{N}", RE_GPT2}},
    {.name = "minerva-7b", .regexes = {"\\p{N}", RE_GPT2}},
    /* Mistral tekken; GPT-4o / Llama 4 (o200k). */
    {.name = "tekken", .regexes = {RE_TEKKEN}, .ignore_merges = true, .add_bos = true},
    {.name = "gpt-4o", .regexes = {RE_GPT4O}},
    {.name = "llama4", .regexes = {RE_GPT4O}},
    /* Bloom-style. */
    {.name = "bloom", .regexes = {RE_BLOOM}},
    {.name = "poro-chat", .regexes = {RE_BLOOM}},
    {.name = "gpt3-finnish", .regexes = {RE_BLOOM}},
    {.name = "viking", .regexes = {RE_BLOOM, "\\p{N}"}},
};

const tnd_pretok_def *tnd_pretok_find(const char *name, size_t len) {
    if (!name) return NULL;
    for (size_t i = 0; i < sizeof pretok_defs / sizeof pretok_defs[0]; i++) {
        const char *n = pretok_defs[i].name;
        if (strlen(n) == len && memcmp(n, name, len) == 0) return &pretok_defs[i];
    }
    return NULL;
}

/* ---------------------------------------------------------------------------------------------------------------
 * Compilation (PCRE2 allocates through the model's allocator)
 * ------------------------------------------------------------------------------------------------------------- */

static void *pcre_alloc(size_t size, void *user) { return tnd_alloc((const tnd_allocator *)user, size); }
static void pcre_free(void *ptr, void *user) { tnd_free((const tnd_allocator *)user, ptr); }

tnd_status tnd_pretok_compile(const tnd_pretok_def *def, const tnd_allocator *allocator, tnd_pretok *out) {
    memset(out, 0, sizeof *out);
    tnd_status st = TND_OK;
    out->def = def;
    out->gctx = pcre2_general_context_create(pcre_alloc, pcre_free, (void *)allocator);
    if (!out->gctx) return tnd_fail(TND_ERR_OUT_OF_MEMORY, "pre-tokenizer '%s': out of memory", def->name);
    out->ovector_pairs = 1;
    pcre2_compile_context *cctx = pcre2_compile_context_create(out->gctx);
    if (!cctx) {
        st = tnd_fail(TND_ERR_OUT_OF_MEMORY, "pre-tokenizer '%s': out of memory", def->name);
        goto cleanup;
    }
    for (int i = 0; i < TND_PRETOK_MAX_REGEX && def->regexes[i]; i++) {
        int err = 0;
        PCRE2_SIZE err_offset = 0;
        pcre2_code *code = pcre2_compile((PCRE2_SPTR)def->regexes[i], PCRE2_ZERO_TERMINATED,
                                         PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &err, &err_offset, cctx);
        if (!code) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(err, msg, sizeof msg);
            st = tnd_fail(TND_ERR_INTERNAL, "pre-tokenizer '%s': regex %d does not compile at offset %zu: %s",
                          def->name, i, (size_t)err_offset, (const char *)msg);
            goto cleanup;
        }
        out->code[out->n_regex++] = code;
        /* JIT is an optimization: where the platform has none, the interpreter gives the same matches. */
        (void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
        uint32_t captures = 0;
        pcre2_pattern_info(code, PCRE2_INFO_CAPTURECOUNT, &captures);
        if (captures + 1 > out->ovector_pairs) out->ovector_pairs = captures + 1;
    }
cleanup:
    pcre2_compile_context_free(cctx);
    if (st) tnd_pretok_release(out);
    return st;
}

void tnd_pretok_release(tnd_pretok *p) {
    for (int i = 0; i < p->n_regex; i++) pcre2_code_free(p->code[i]);
    pcre2_general_context_free(p->gctx);
    memset(p, 0, sizeof *p);
}

/* ---------------------------------------------------------------------------------------------------------------
 * Per-call state
 * ------------------------------------------------------------------------------------------------------------- */

enum { JIT_STACK_START = 32 * 1024, JIT_STACK_MAX = 8 * 1024 * 1024 };

tnd_status tnd_pretok_state_init(const tnd_pretok *p, const tnd_allocator *allocator, tnd_pretok_state *s) {
    memset(s, 0, sizeof *s);
    s->allocator = allocator;
    if (!p->gctx) return TND_OK; /* no regexes: only NFC buffers are used */
    s->match = pcre2_match_data_create(p->ovector_pairs, p->gctx);
    s->mctx = pcre2_match_context_create(p->gctx);
    s->jit_stack = pcre2_jit_stack_create(JIT_STACK_START, JIT_STACK_MAX, p->gctx);
    if (!s->match || !s->mctx || !s->jit_stack) {
        tnd_pretok_state_release(s);
        return tnd_fail(TND_ERR_OUT_OF_MEMORY, "pre-tokenizer: out of memory for match state");
    }
    pcre2_jit_stack_assign(s->mctx, NULL, s->jit_stack);
    return TND_OK;
}

void tnd_pretok_state_release(tnd_pretok_state *s) {
    pcre2_match_data_free(s->match);
    pcre2_match_context_free(s->mctx);
    pcre2_jit_stack_free(s->jit_stack);
    tnd_free(s->allocator, s->codepoints);
    tnd_free(s->allocator, s->text);
    memset(s, 0, sizeof *s);
}

/* ---------------------------------------------------------------------------------------------------------------
 * Splitting
 * ------------------------------------------------------------------------------------------------------------- */

/* Splits text with regex `level` and hands every piece (matches and the text between them) to the next level;
 * past the last regex, pieces go to fn. The recursion is as deep as the regex list (at most 6). */
static tnd_status split_level(const tnd_pretok *p, tnd_pretok_state *s, int level, const char *text, size_t len,
                              tnd_piece_fn fn, void *user) {
    if (level == p->n_regex) return fn(user, text, len);
    tnd_status st = TND_OK;
    size_t pos = 0, gap_start = 0;
    while (pos < len) {
        int rc = pcre2_match(p->code[level], (PCRE2_SPTR)text, len, pos, 0, s->match, s->mctx);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return tnd_fail(TND_ERR_UNSUPPORTED, "pre-tokenizer '%s': regex %d failed on the text at byte %zu: %s",
                            p->def->name, level, pos, (const char *)msg);
        }
        const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(s->match);
        size_t start = ov[0], end = ov[1];
        if (end <= start) {
            /* an empty match yields no piece: search again from the next character */
            pos = start + tnd_utf8_char_len((const uint8_t *)text + start, len - start);
            continue;
        }
        if (start > gap_start && (st = split_level(p, s, level + 1, text + gap_start, start - gap_start, fn, user)))
            return st;
        if ((st = split_level(p, s, level + 1, text + start, end - start, fn, user))) return st;
        pos = gap_start = end;
    }
    if (gap_start < len) st = split_level(p, s, level + 1, text + gap_start, len - gap_start, fn, user);
    return st;
}

tnd_status tnd_pretok_split(const tnd_pretok *p, tnd_pretok_state *s, const char *text, size_t len,
                            tnd_piece_fn fn, void *user) {
    if (len == 0) return TND_OK;
    return split_level(p, s, 0, text, len, fn, user);
}

/* ---------------------------------------------------------------------------------------------------------------
 * NFC
 * ------------------------------------------------------------------------------------------------------------- */

/* Appends the NFC form of a well-formed UTF-8 stretch to s->text at *used. */
static tnd_status nfc_append(tnd_pretok_state *s, const uint8_t *run, size_t n, size_t *used) {
    const utf8proc_option_t opts = UTF8PROC_STABLE | UTF8PROC_COMPOSE;
    /* utf8proc reports the code point count it needs when the buffer is short; grow and decompose again */
    for (;;) {
        utf8proc_ssize_t n_cp = utf8proc_decompose((const utf8proc_uint8_t *)run, (utf8proc_ssize_t)n,
                                                   (utf8proc_int32_t *)s->codepoints,
                                                   (utf8proc_ssize_t)s->codepoints_cap, opts);
        if (n_cp < 0)
            return tnd_fail(TND_ERR_INTERNAL, "NFC normalization failed: %s", utf8proc_errmsg(n_cp));
        if ((size_t)n_cp > s->codepoints_cap) {
            if (!tnd_text_reserve(s->allocator, (void **)&s->codepoints, &s->codepoints_cap, (size_t)n_cp,
                                  sizeof *s->codepoints))
                return tnd_fail(TND_ERR_OUT_OF_MEMORY, "NFC normalization: out of memory");
            continue;
        }
        n_cp = utf8proc_normalize_utf32((utf8proc_int32_t *)s->codepoints, n_cp, opts);
        if (n_cp < 0)
            return tnd_fail(TND_ERR_INTERNAL, "NFC normalization failed: %s", utf8proc_errmsg(n_cp));
        if (!tnd_text_reserve(s->allocator, (void **)&s->text, &s->text_cap, *used + 4 * (size_t)n_cp, 1))
            return tnd_fail(TND_ERR_OUT_OF_MEMORY, "NFC normalization: out of memory");
        for (utf8proc_ssize_t i = 0; i < n_cp; i++)
            *used += tnd_utf8_encode((uint32_t)s->codepoints[i], (uint8_t *)s->text + *used);
        return TND_OK;
    }
}

tnd_status tnd_text_nfc(tnd_pretok_state *s, const char *text, size_t len, const char **out, size_t *out_len) {
    const uint8_t *t = (const uint8_t *)text;
    size_t i = 0;
    while (i < len && t[i] < 0x80) i++;
    if (i == len) {
        *out = text;
        *out_len = len;
        return TND_OK;
    }
    size_t used = 0;
    if (!tnd_text_reserve(s->allocator, (void **)&s->text, &s->text_cap, len, 1))
        return tnd_fail(TND_ERR_OUT_OF_MEMORY, "NFC normalization: out of memory");
    size_t run_start = 0;
    i = 0;
    while (i <= len) {
        size_t k = i < len ? tnd_utf8_seq_len(t + i, len - i) : 0;
        if (k) {
            i += k;
            continue;
        }
        /* end of a well-formed stretch: at the end of the text or at a byte that is not well-formed */
        if (i > run_start) {
            tnd_status st = nfc_append(s, t + run_start, i - run_start, &used);
            if (st) return st;
        }
        if (i == len) break;
        if (!tnd_text_reserve(s->allocator, (void **)&s->text, &s->text_cap, used + 1, 1))
            return tnd_fail(TND_ERR_OUT_OF_MEMORY, "NFC normalization: out of memory");
        s->text[used++] = (char)t[i];
        run_start = ++i;
    }
    *out = s->text;
    *out_len = used;
    return TND_OK;
}

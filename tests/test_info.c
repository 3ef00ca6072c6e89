/* test_info.c: `tandem info` from outside: key facts of the fixtures in text and JSON (checked against the shapes
 * the fixtures are documented to have and against sums over the tensor table), a strict JSON parse of every
 * output, a handcrafted file whose metadata exercises every value type and every escape, and exit codes and
 * one-line errors for bad files and bad usage. */
#include "harness.h"

#include "gguf/gguf.h"

#include "tandem.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

enum { OUT_CAP = 1 << 20 };

static char out[OUT_CAP], err[1 << 14]; /* the last run's stdout and stderr */

/* Runs `tandem info ARGS`; stdout into `out`, stderr into `err`; returns the exit code (-1 if it did not run). */
static int run_info(const char *args) {
    char err_path[] = "/tmp/tnd_info_err_XXXXXX";
    int fd = mkstemp(err_path);
    if (fd < 0) return -1;
    close(fd);
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s' info %s 2>'%s'", TND_TANDEM_BIN, args, err_path);
    out[0] = err[0] = 0;
    int rc = -1;
    FILE *p = popen(cmd, "r");
    if (p) {
        size_t n = fread(out, 1, OUT_CAP - 1, p);
        out[n] = 0;
        int st = pclose(p);
        rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    }
    FILE *e = fopen(err_path, "rb");
    if (e) {
        size_t n = fread(err, 1, sizeof err - 1, e);
        err[n] = 0;
        fclose(e);
    }
    unlink(err_path);
    return rc;
}

/* ------------------------------------------------------------------------------------------------------------
 * A strict JSON reader (RFC 8259): validates, decodes strings, and finds values by a path of keys
 * ---------------------------------------------------------------------------------------------------------- */

typedef struct jreader {
    const char *p;
} jreader;

static void jws(jreader *r) {
    while (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r') r->p++;
}

static size_t put_utf8(char *dst, unsigned cp) {
    if (cp < 0x80) return dst[0] = (char)cp, 1;
    if (cp < 0x800) return dst[0] = (char)(0xC0 | cp >> 6), dst[1] = (char)(0x80 | (cp & 0x3F)), 2;
    if (cp < 0x10000)
        return dst[0] = (char)(0xE0 | cp >> 12), dst[1] = (char)(0x80 | (cp >> 6 & 0x3F)),
               dst[2] = (char)(0x80 | (cp & 0x3F)), 3;
    return dst[0] = (char)(0xF0 | cp >> 18), dst[1] = (char)(0x80 | (cp >> 12 & 0x3F)),
           dst[2] = (char)(0x80 | (cp >> 6 & 0x3F)), dst[3] = (char)(0x80 | (cp & 0x3F)), 4;
}

static bool hex4(const char *p, unsigned *value) {
    *value = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int v = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (v < 0) return false;
        *value = *value << 4 | (unsigned)v;
    }
    return true;
}

/* Reads a string; decodes it into dst (cap bytes, may be NULL) with its length in *len. Raw bytes must be UTF-8
 * without control characters. */
static bool jstring(jreader *r, char *dst, size_t cap, size_t *len) {
    size_t n = 0;
    char tmp[4];
    if (*r->p != '"') return false;
    r->p++;
    for (;;) {
        unsigned char c = (unsigned char)*r->p;
        size_t k = 0;
        if (c == '"') break;
        if (c < 0x20) return false;
        if (c == '\\') {
            char e = r->p[1];
            const char *simple = strchr("\"\\/bfnrt", e);
            if (e && simple) {
                tmp[0] = "\"\\/\b\f\n\r\t"[simple - "\"\\/bfnrt"];
                k = 1;
                r->p += 2;
            } else if (e == 'u') {
                unsigned cp, lo;
                if (!hex4(r->p + 2, &cp)) return false;
                r->p += 6;
                if (cp >= 0xDC00 && cp <= 0xDFFF) return false;
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    if (r->p[0] != '\\' || r->p[1] != 'u' || !hex4(r->p + 2, &lo) || lo < 0xDC00 || lo > 0xDFFF)
                        return false;
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    r->p += 6;
                }
                k = put_utf8(tmp, cp);
            } else {
                return false;
            }
        } else {
            /* a raw UTF-8 sequence, checked */
            size_t want = c < 0x80 ? 1 : c < 0xC2 ? 0 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : c < 0xF5 ? 4 : 0;
            if (!want) return false;
            for (size_t i = 1; i < want; i++)
                if (((unsigned char)r->p[i] & 0xC0) != 0x80) return false;
            memcpy(tmp, r->p, want);
            k = want;
            r->p += want;
        }
        if (dst && n + k < cap) memcpy(dst + n, tmp, k);
        n += k;
    }
    r->p++;
    if (dst && cap) dst[n < cap ? n : cap - 1] = 0;
    if (len) *len = n;
    return true;
}

static bool jnumber(jreader *r) {
    const char *p = r->p;
    if (*p == '-') p++;
    if (*p == '0') p++;
    else if (*p >= '1' && *p <= '9') while (*p >= '0' && *p <= '9') p++;
    else return false;
    if (*p == '.') {
        p++;
        if (!(*p >= '0' && *p <= '9')) return false;
        while (*p >= '0' && *p <= '9') p++;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-') p++;
        if (!(*p >= '0' && *p <= '9')) return false;
        while (*p >= '0' && *p <= '9') p++;
    }
    r->p = p;
    return true;
}

static bool jvalue(jreader *r, int depth);

/* Reads an object or array (open = '{' or '['). */
static bool jcontainer(jreader *r, char open, int depth) {
    bool object = open == '{';
    r->p++;
    jws(r);
    if (*r->p == (object ? '}' : ']')) return r->p++, true;
    for (;;) {
        jws(r);
        if (object) {
            if (!jstring(r, NULL, 0, NULL)) return false;
            jws(r);
            if (*r->p++ != ':') return false;
        }
        if (!jvalue(r, depth + 1)) return false;
        jws(r);
        if (*r->p == ',') {
            r->p++;
            continue;
        }
        return *r->p++ == (object ? '}' : ']');
    }
}

static bool jvalue(jreader *r, int depth) {
    if (depth > 64) return false;
    jws(r);
    switch (*r->p) {
    case '{': case '[': return jcontainer(r, *r->p, depth);
    case '"': return jstring(r, NULL, 0, NULL);
    case 't': return !strncmp(r->p, "true", 4) ? (r->p += 4, true) : false;
    case 'f': return !strncmp(r->p, "false", 5) ? (r->p += 5, true) : false;
    case 'n': return !strncmp(r->p, "null", 4) ? (r->p += 4, true) : false;
    default: return jnumber(r);
    }
}

/* The whole text is one JSON object followed by a newline and nothing else. */
static bool json_document(const char *text) {
    jreader r = {text};
    jws(&r);
    if (*r.p != '{' || !jvalue(&r, 0)) return false;
    return !strcmp(r.p, "\n");
}

/* The start of the value at `path` (keys separated by '/'; a number selects an array element) or NULL. */
static const char *jfind(const char *doc, const char *path) {
    jreader r = {doc};
    while (*path) {
        const char *slash = strchr(path, '/');
        size_t seg = slash ? (size_t)(slash - path) : strlen(path);
        jws(&r);
        bool found = false;
        if (*r.p == '{') {
            r.p++;
            jws(&r);
            while (*r.p == '"') {
                char key[256];
                size_t klen = 0;
                if (!jstring(&r, key, sizeof key, &klen)) return NULL;
                jws(&r);
                if (*r.p++ != ':') return NULL;
                jws(&r);
                if (klen == seg && !memcmp(key, path, seg)) {
                    found = true;
                    break;
                }
                if (!jvalue(&r, 0)) return NULL;
                jws(&r);
                if (*r.p == ',') r.p++;
                jws(&r);
            }
        } else if (*r.p == '[') {
            long index = strtol(path, NULL, 10);
            r.p++;
            for (long i = 0; i < index; i++) {
                if (!jvalue(&r, 0)) return NULL;
                jws(&r);
                if (*r.p++ != ',') return NULL;
            }
            jws(&r);
            found = *r.p != ']';
        }
        if (!found) return NULL;
        path += seg + (slash ? 1 : 0);
    }
    jws(&r);
    return r.p;
}

static bool jint(const char *doc, const char *path, long long want) {
    const char *v = jfind(doc, path);
    char *end = NULL;
    bool ok = v && strtoll(v, &end, 10) == want && end != v;
    if (!ok) fprintf(stderr, "JSON %s: expected %lld, found %.40s\n", path, want, v ? v : "(absent)");
    return ok;
}

static bool jstr(const char *doc, const char *path, const char *want, size_t want_len) {
    const char *v = jfind(doc, path);
    char buf[1024];
    size_t len = 0;
    jreader r = {v};
    bool ok = v && jstring(&r, buf, sizeof buf, &len) && len == want_len && !memcmp(buf, want, len);
    if (!ok) fprintf(stderr, "JSON %s: expected '%.*s', found %.60s\n", path, (int)want_len, want, v ? v : "(absent)");
    return ok;
}

static bool jliteral(const char *doc, const char *path, const char *literal) {
    const char *v = jfind(doc, path);
    return v && !strncmp(v, literal, strlen(literal));
}

static long jarray_length(const char *doc, const char *path) {
    jreader r = {jfind(doc, path)};
    if (!r.p || *r.p != '[') return -1;
    r.p++;
    jws(&r);
    if (*r.p == ']') return 0;
    long n = 0;
    for (;;) {
        if (!jvalue(&r, 0)) return -1;
        n++;
        jws(&r);
        if (*r.p == ']') return n;
        if (*r.p++ != ',') return -1;
    }
}

/* ------------------------------------------------------------------------------------------------------------
 * Fixtures
 * ---------------------------------------------------------------------------------------------------------- */

typedef struct fixture {
    const char *path, *arch;
    long long tensors, vocab;
    long long params;            /* from the documented shapes; -1: only the sum over the tensor table */
    long long embd, blocks, heads, heads_kv, ff, ctx; /* -1: not checked */
} fixture;

/* llama-tiny: n_embd 256, 2 layers, 8 heads, 2 KV heads of 32, n_ff 512, vocab 512, separate output. */
#define LLAMA_TINY_PARAMS (2LL * 512 * 256 + 256 + 2 * (2LL * 256 + 2 * 256 * 256 + 2 * 256 * 64 + 3 * 256 * 512))
/* stories260K: dim 64, hidden 172, 5 layers, 8 heads, 4 KV heads, vocab 512; llama.cpp stored the classifier too. */
#define STORIES_PARAMS (2LL * 512 * 64 + 64 + 5 * (2LL * 64 + 2 * 64 * 64 + 2 * 64 * 32 + 3 * 64 * 172))

static const fixture fixtures[] = {
    {"models/llama-tiny-f32.gguf", "llama", 21, 512, LLAMA_TINY_PARAMS, 256, 2, 8, 2, 512, -1},
    {"models/llama-tiny-q4_k_m.gguf", "llama", 21, 512, LLAMA_TINY_PARAMS, 256, 2, 8, 2, 512, -1},
    {"models/llama3-tiny-q8_0.gguf", "llama", -1, 512, -1, 256, 2, 8, 1, 512, -1},
    {"models/qwen2-tiny-f32.gguf", "qwen2", -1, 512, -1, 256, -1, 8, -1, -1, -1},
    {"models/qwen3-tiny-q4_k_m.gguf", "qwen3", -1, 512, -1, 256, -1, 8, 4, -1, -1},
    {"models/qwen2moe-tiny-q8_0.gguf", "qwen2moe", -1, 512, -1, 256, -1, -1, -1, -1, -1},
    {"vocab/ggml-vocab-gpt-2.gguf", "gpt2", 0, 50257, 0, -1, -1, -1, -1, -1, -1},
    {"vocab/ggml-vocab-llama-spm.gguf", "llama", 0, 32000, 0, -1, -1, -1, -1, -1, -1},
    {"vocab/ggml-vocab-falcon.gguf", "falcon", 0, 65024, 0, -1, -1, -1, -1, -1, -1},
    {"real/stories260K.gguf", "llama", 48, 512, STORIES_PARAMS, 64, 5, 8, 4, 172, 128},
};

/* The value column of the text line whose label is `label` (first match), or NULL. */
static const char *text_field(const char *text, const char *label, char *buf, size_t cap) {
    size_t n = strlen(label);
    for (const char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        if (strncmp(line, "  ", 2) || strncmp(line + 2, label, n) || line[2 + n] != ' ') continue;
        const char *v = line + 2 + n;
        while (*v == ' ') v++;
        const char *end = strchr(v, '\n');
        size_t len = end ? (size_t)(end - v) : strlen(v);
        if (len >= cap) len = cap - 1;
        memcpy(buf, v, len);
        buf[len] = 0;
        return buf;
    }
    return NULL;
}

static void check_fixture(const fixture *fx) {
    char path[4096], args[4200], buf[512];
    snprintf(path, sizeof path, "%s", tnd_fixture(fx->path));
    /* the oracle for parameters and offsets: the tensor table read through the library */
    tnd_model *m = NULL;
    if (!CHECK_OK(tnd_model_open(path, NULL, &m))) return;
    long long n_tensors = tnd_model_tensor_count(m), params = 0;
    tnd_tensor_info first = {0};
    for (int64_t i = 0; i < n_tensors; i++) {
        tnd_tensor_info t;
        if (CHECK_OK(tnd_model_tensor_at(m, i, &t))) params += (long long)t.n_elements;
        if (i == 0) first = t;
    }
    if (fx->tensors >= 0) CHECK(n_tensors == fx->tensors);
    if (fx->params >= 0 && !CHECK(params == fx->params))
        fprintf(stderr, "%s: %lld parameters, documented shapes give %lld\n", fx->path, params, fx->params);

    /* JSON with the tensor table */
    snprintf(args, sizeof args, "'%s' --json --tensors", path);
    CHECK(run_info(args) == 0 && err[0] == 0);
    bool valid = json_document(out);
    if (!CHECK(valid)) fprintf(stderr, "%s: invalid JSON: %.200s\n", fx->path, out);
    if (valid) {
        CHECK(jstr(out, "architecture", fx->arch, strlen(fx->arch)));
        CHECK(jint(out, "tensor_count", n_tensors) && jint(out, "parameters", params));
        CHECK(jint(out, "tokenizer/vocab_size", fx->vocab));
        CHECK(jint(out, "file_size", (long long)tnd_model_file_size(m)) && jint(out, "gguf_version", 3) &&
              jint(out, "alignment", 32));
        CHECK(jarray_length(out, "tensors") == n_tensors);
        static const struct {
            const char *key;
            size_t field;
        } hp[] = {{"hparams/embedding_length", offsetof(fixture, embd)},
                  {"hparams/block_count", offsetof(fixture, blocks)},
                  {"hparams/attention.head_count", offsetof(fixture, heads)},
                  {"hparams/attention.head_count_kv", offsetof(fixture, heads_kv)},
                  {"hparams/feed_forward_length", offsetof(fixture, ff)},
                  {"context_length", offsetof(fixture, ctx)}};
        for (size_t k = 0; k < sizeof hp / sizeof hp[0]; k++) {
            long long want;
            memcpy(&want, (const char *)fx + hp[k].field, sizeof want);
            if (want >= 0) CHECK(jint(out, hp[k].key, want));
        }
        if (n_tensors > 0) {
            CHECK(jstr(out, "tensors/0/name", first.name, strlen(first.name)));
            CHECK(jint(out, "tensors/0/offset", (long long)first.offset) &&
                  jint(out, "tensors/0/size", (long long)first.size));
            CHECK(jarray_length(out, "tensors/0/shape") == (long)first.n_dims &&
                  jint(out, "tensors/0/shape/0", first.ne[0]));
        }
        CHECK(jliteral(out, "chat_template/present", "false"));
    }
    tnd_model_close(m);

    /* text */
    snprintf(args, sizeof args, "'%s'", path);
    CHECK(run_info(args) == 0 && err[0] == 0);
    CHECK(text_field(out, "architecture", buf, sizeof buf) && !strcmp(buf, fx->arch));
    char want[64];
    snprintf(want, sizeof want, params >= 1000 ? "(%lld)" : "%lld", params);
    CHECK(text_field(out, "parameters", buf, sizeof buf) && strstr(buf, want));
    CHECK(text_field(out, "tensors", buf, sizeof buf) && atoll(buf) == n_tensors);
    snprintf(want, sizeof want, "%lld tokens", fx->vocab);
    CHECK(text_field(out, "vocabulary", buf, sizeof buf) && !strcmp(buf, want));
    CHECK(!strstr(out, "\ntensors\n")); /* the table only with --tensors */

    snprintf(args, sizeof args, "'%s' --tensors", path);
    CHECK(run_info(args) == 0);
    const char *table = strstr(out, "\ntensors\n");
    long rows = -1; /* the header line */
    for (const char *p = table ? table + 9 : NULL; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) rows++;
    CHECK(n_tensors == 0 ? table == NULL || rows == 0 : rows == n_tensors);
    printf("%-34s %-9s %3lld tensors %9lld parameters %6lld tokens: checked\n", fx->path, fx->arch,
           n_tensors, params, fx->vocab);
}

/* stories260K's special tokens and one tensor row, in both renderings. */
static void check_stories_details(void) {
    char args[4200], buf[256];
    snprintf(args, sizeof args, "'%s' --json", tnd_fixture("real/stories260K.gguf"));
    if (!CHECK(run_info(args) == 0 && json_document(out))) return;
    CHECK(jint(out, "tokenizer/special/bos/id", 1) && jstr(out, "tokenizer/special/bos/text", "<s>", 3));
    CHECK(jint(out, "tokenizer/special/eos/id", 2) && jstr(out, "tokenizer/special/eos/text", "</s>", 4));
    CHECK(jint(out, "tokenizer/special/unknown/id", 0) && jstr(out, "tokenizer/special/unknown/text", "<unk>", 5));
    CHECK(jint(out, "tokenizer/special/padding/id", 4294967295LL) &&
          jliteral(out, "tokenizer/special/padding/text", "null"));
    CHECK(jstr(out, "tokenizer/model", "llama", 5) && jliteral(out, "tokenizer/pre", "null"));
    CHECK(jint(out, "tensor_types/f32/count", 48) && jint(out, "tokenizer/arrays/scores", 512));
    CHECK(jfind(out, "tensors") == NULL);
    snprintf(args, sizeof args, "'%s' --tensors", tnd_fixture("models/llama-tiny-f32.gguf"));
    CHECK(run_info(args) == 0);
    const char *row = strstr(out, " token_embd.weight ");
    const char *eol = row ? strchr(row, '\n') : NULL;
    snprintf(buf, sizeof buf, "%.*s", row && eol ? (int)(eol - row) : 0, row ? row : "");
    CHECK(strstr(buf, " f32 ") && strstr(buf, "[256, 512]") && strstr(buf, " 524288"));
    CHECK(text_field(out, "bos", buf, sizeof buf) && !strcmp(buf, "1          <s>"));
}

/* ------------------------------------------------------------------------------------------------------------
 * A handcrafted file: every value type, strings that need escapes, bytes that are not UTF-8
 * ---------------------------------------------------------------------------------------------------------- */

static const char tricky_name[] = "q\"b\\n\nt\tc\x01 \xc3\xa9 \xe2\x9c\x93 \xff\xc0\x80 \xf0\x9f\x98\x80 end";
/* as JSON must decode it: each byte that is not UTF-8 becomes U+FFFD */
static const char tricky_decoded[] =
    "q\"b\\n\nt\tc\x01 \xc3\xa9 \xe2\x9c\x93 \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd \xf0\x9f\x98\x80 end";
static const char chatml[] = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
                             "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt "
                             "%}{{ '<|im_start|>assistant\\n' }}{% endif %}";

static bool write_tricky(const char *path) {
    tnd_gguf_writer *w = tnd_gguf_writer_init(NULL);
    if (!w) return false;
    uint64_t big = UINT64_MAX;
    int64_t neg = -5;
    double third = 1.0 / 3.0;
    int32_t list[3] = {1, -2, 3};
    uint8_t bytes[300] = {0};
    const char *names[2] = {"a", "b\"c"};
    const char *tokens[2] = {"<s>", "x\ny"};
    static const float weights[6] = {1, 2, 3, 4, 5, 6};
    const int64_t ne[2] = {3, 2};
    bool ok = !tnd_gguf_writer_set_str(w, "general.architecture", "tst") &&
              !tnd_gguf_writer_set_str(w, "general.name", tricky_name) &&
              !tnd_gguf_writer_set_u32(w, "tst.context_length", 77) &&
              !tnd_gguf_writer_set_bool(w, "tst.flag", true) &&
              !tnd_gguf_writer_set_scalar(w, "tst.big", TND_VALUE_U64, &big) &&
              !tnd_gguf_writer_set_scalar(w, "tst.neg", TND_VALUE_I64, &neg) &&
              !tnd_gguf_writer_set_scalar(w, "tst.third", TND_VALUE_F64, &third) &&
              !tnd_gguf_writer_set_f32(w, "tst.nan", NAN) && !tnd_gguf_writer_set_f32(w, "tst.eps", 1e-6f) &&
              !tnd_gguf_writer_set_array(w, "tst.list", TND_VALUE_I32, list, 3) &&
              !tnd_gguf_writer_set_array_str(w, "tst.names", names, NULL, 2) &&
              !tnd_gguf_writer_set_array(w, "tst.long", TND_VALUE_U8, bytes, 300) &&
              !tnd_gguf_writer_set_str(w, "tokenizer.ggml.model", "llama") &&
              !tnd_gguf_writer_set_array_str(w, "tokenizer.ggml.tokens", tokens, NULL, 2) &&
              !tnd_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1) &&
              !tnd_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 7) &&
              !tnd_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", false) &&
              !tnd_gguf_writer_set_str(w, "tokenizer.chat_template", chatml) &&
              !tnd_gguf_writer_set_str(w, "tokenizer.chat_template.tool_use", "{{ x }}") &&
              !tnd_gguf_writer_set_str(w, "custom.key", "v") &&
              !tnd_gguf_writer_add_tensor(w, "w\"eird", TND_TYPE_F32, 2, ne, weights) &&
              !tnd_gguf_writer_write_file(w, path);
    tnd_gguf_writer_free(w);
    return ok;
}

static void check_tricky(void) {
    char path[] = "/tmp/tnd_info_tricky_XXXXXX";
    int fd = mkstemp(path);
    if (!CHECK(fd >= 0)) return;
    close(fd);
    char args[4200], buf[512];
    snprintf(args, sizeof args, "'%s' --json --tensors", path);
    if (CHECK(write_tricky(path)) && CHECK(run_info(args) == 0)) {
        bool valid = json_document(out);
        if (!CHECK(valid)) fprintf(stderr, "invalid JSON: %s\n", out);
        CHECK(jstr(out, "name", tricky_decoded, sizeof tricky_decoded - 1));
        CHECK(jint(out, "context_length", 77) && jint(out, "hparams/context_length", 77));
        CHECK(jliteral(out, "hparams/flag", "true") && jint(out, "hparams/neg", -5));
        CHECK(jliteral(out, "hparams/big", "18446744073709551615") && jliteral(out, "hparams/nan", "null"));
        const char *third = jfind(out, "hparams/third"), *eps = jfind(out, "hparams/eps");
        CHECK(third && strtod(third, NULL) == 1.0 / 3.0); /* f64 reads back exactly */
        CHECK(eps && (float)strtod(eps, NULL) == 1e-6f);   /* f32 too */
        CHECK(jarray_length(out, "hparams/list") == 3 && jint(out, "hparams/list/1", -2));
        CHECK(jarray_length(out, "hparams/names") == 2 && jstr(out, "hparams/names/1", "b\"c", 3));
        CHECK(jstr(out, "hparams/long/array", "u8", 2) && jint(out, "hparams/long/count", 300));
        CHECK(jint(out, "tokenizer/vocab_size", 2) && jint(out, "tokenizer/special/bos/id", 1) &&
              jstr(out, "tokenizer/special/bos/text", "x\ny", 3));
        CHECK(jint(out, "tokenizer/special/eos/id", 7) && jliteral(out, "tokenizer/special/eos/text", "null"));
        CHECK(jliteral(out, "tokenizer/options/add_bos_token", "false") && jint(out, "tokenizer/arrays/tokens", 2));
        CHECK(jliteral(out, "chat_template/present", "true") &&
              jint(out, "chat_template/bytes", (long long)strlen(chatml)));
        const char *format = NULL;
        if (tnd_chat_template_detect(chatml, strlen(chatml), &format) == TND_OK)
            CHECK(jstr(out, "chat_template/format", format, strlen(format)));
        else
            CHECK(jliteral(out, "chat_template/format", "null"));
        CHECK(jarray_length(out, "chat_template/named") == 1 && jstr(out, "chat_template/named/0", "tool_use", 8));
        CHECK(jstr(out, "other/custom.key", "v", 1) && jfind(out, "general/name") == NULL);
        CHECK(jint(out, "parameters", 6) && jint(out, "tensor_types/f32/count", 1) &&
              jint(out, "tensor_types/f32/bytes", 24));
        CHECK(jstr(out, "tensors/0/name", "w\"eird", 6) && jint(out, "tensors/0/shape/1", 2));
        snprintf(args, sizeof args, "'%s' --tensors", path);
        CHECK(run_info(args) == 0);
        /* the text shows the name with its escapes, valid UTF-8 as is */
        CHECK(text_field(out, "name", buf, sizeof buf) && strstr(buf, "\\n") && strstr(buf, "\\x01") &&
              strstr(buf, "\\xff") && strstr(buf, "\xc3\xa9 \xe2\x9c\x93") && !strchr(buf, '\t'));
        CHECK(text_field(out, "big", buf, sizeof buf) && !strcmp(buf, "18446744073709551615"));
        CHECK(text_field(out, "list", buf, sizeof buf) && !strcmp(buf, "[3 x i32] 1, -2, 3"));
        CHECK(text_field(out, "custom.key", buf, sizeof buf) && !strcmp(buf, "v"));
    }
    unlink(path);
}

/* ------------------------------------------------------------------------------------------------------------
 * Errors and usage
 * ---------------------------------------------------------------------------------------------------------- */

static bool one_line(const char *s) {
    const char *nl = strchr(s, '\n');
    return nl && nl[1] == 0;
}

static void check_errors(void) {
    char path[] = "/tmp/tnd_info_bad_XXXXXX", args[4200];
    int fd = mkstemp(path);
    if (!CHECK(fd >= 0)) return;
    size_t size = 0;
    uint8_t *bytes = tnd_test_read_file(tnd_fixture("real/stories260K.gguf"), &size);
    CHECK(bytes && size > 5000 && write(fd, bytes, 5000) == 5000);
    close(fd);
    free(bytes);
    snprintf(args, sizeof args, "'%s'", path);
    CHECK(run_info(args) == 1 && out[0] == 0 && one_line(err) && strstr(err, path) && strstr(err, "truncated"));
    snprintf(args, sizeof args, "'%s' --json", path);
    CHECK(run_info(args) == 1 && out[0] == 0 && one_line(err) && strstr(err, path));
    unlink(path);

    snprintf(args, sizeof args, "'%s'", tnd_fixture("real/tok512.bin"));
    CHECK(run_info(args) == 1 && one_line(err) && strstr(err, "tok512.bin") && strstr(err, "GGUF"));
    CHECK(run_info("/nonexistent/model.gguf") == 1 && one_line(err) && strstr(err, "/nonexistent/model.gguf"));

    CHECK(run_info("") == 2 && strstr(err, "usage: tandem info") && out[0] == 0);
    CHECK(run_info("a.gguf b.gguf") == 2 && strstr(err, "usage"));
    CHECK(run_info("--bogus x.gguf") == 2 && strstr(err, "--bogus"));
    CHECK(run_info("--help") == 0 && strstr(out, "usage: tandem info") && strstr(out, "--json") && err[0] == 0);
}

/* --kernels: a row per group of weight matrices naming its kernel, and TANDEM_CPU_ISA caps what it says. */
static void check_kernels(void) {
    char args[4200];
    snprintf(args, sizeof args, "'%s' --kernels", tnd_fixture("models/qwen2-tiny-q4_k_m.gguf"));
    if (!CHECK(run_info(args) == 0)) return;
    const char *table = strstr(out, "\nkernels (CPU device");
    if (!CHECK(table)) return;
    int rows = 0, described = 0;
    for (const char *line = strchr(table + 1, '\n'); line && line[1]; line = strchr(line + 1, '\n')) {
        if (!strncmp(line + 1, "  tensors", 9)) continue; /* the header */
        rows++;
        const char *eol = strchr(line + 1, '\n');
        const char *dot = strstr(line + 1, " dot");
        described += dot && (!eol || dot < eol);
    }
    CHECK(rows >= 7 && described == rows); /* q, k, v, output, gate, up, down at least */
    CHECK(strstr(table, "attn_q.weight") != NULL);
    setenv("TANDEM_CPU_ISA", "ref", 1);
    if (CHECK(run_info(args) == 0)) CHECK(strstr(out, "  ref dot") != NULL);
    unsetenv("TANDEM_CPU_ISA");
}

int main(void) {
    check_kernels();
    for (size_t i = 0; i < sizeof fixtures / sizeof fixtures[0]; i++) check_fixture(&fixtures[i]);
    check_stories_details();
    check_tricky();
    check_errors();
    return tnd_test_finish("test_info");
}

/* cmd_tokenize.c: `tandem tokenize -m MODEL [--ids] [--no-bos] [--special]` encodes the text read from stdin
 * (all of it, byte for byte: a trailing newline is text too) and prints the ids, or one "id 'piece'" line per
 * token; `tandem detokenize -m MODEL [--special]` reads ids from stdin and writes the decoded text. */
#include "cli_util.h"
#include "commands.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Reads all of stdin into a malloc'ed buffer (*len bytes, NUL-terminated); NULL with a message on failure. */
static char *read_stdin(size_t *len) {
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n + 1 == cap) {
            char *bigger = cap > ((size_t)1 << 40) ? NULL : realloc(buf, cap * 2);
            if (!bigger) break;
            buf = bigger;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - 1 - n, stdin);
        n += got;
        if (got == 0) {
            if (ferror(stdin)) break;
            buf[n] = 0;
            *len = n;
            return buf;
        }
    }
    fprintf(stderr, "tandem: cannot read stdin\n");
    free(buf);
    return NULL;
}

/* Prints a piece so that every byte is visible: escapes for control characters, quotes and bytes that are not
 * UTF-8; well-formed UTF-8 as is. */
static void print_piece(const char *p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '\n') fputs("\\n", stdout);
        else if (c == '\t') fputs("\\t", stdout);
        else if (c == '\r') fputs("\\r", stdout);
        else if (c == '\\' || c == '\'') printf("\\%c", c);
        else if (c < 0x20 || c == 0x7F) printf("\\x%02x", c);
        else if (c < 0x80) putchar(c);
        else {
            /* a well-formed multi-byte sequence goes out whole; anything else byte by byte as \xNN */
            size_t want = c >= 0xF0 && c < 0xF5 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
            bool ok = want > 1 && c < 0xF5 && i + want <= n;
            for (size_t k = 1; ok && k < want; k++) ok = ((unsigned char)p[i + k] & 0xC0) == 0x80;
            if (ok) {
                fwrite(p + i, 1, want, stdout);
                i += want - 1;
            } else {
                printf("\\x%02x", c);
            }
        }
    }
}

/* Options of both commands. */
typedef struct tok_options {
    const char *model;
    bool ids, no_bos, special;
} tok_options;

/* Parses argv into *o; false (with *rc the exit code, having printed usage or the problem) when the command
 * should not run. */
static bool parse_options(int argc, char **argv, bool encode, tok_options *o, int *rc) {
    const char *usage = encode ? "usage: tandem tokenize -m MODEL [--ids] [--no-bos] [--special] < TEXT\n"
                                 "  prints one 'id piece' line per token, or the ids alone with --ids;\n"
                                 "  --no-bos: no BOS/EOS; --special: control tokens in the text become tokens\n"
                               : "usage: tandem detokenize -m MODEL [--special] < IDS\n"
                                 "  writes the text of the ids (space or comma separated);\n"
                                 "  --special: show control tokens\n";
    memset(o, 0, sizeof *o);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(usage, stdout);
            *rc = 0;
            return false;
        }
        if (!strcmp(a, "-m")) {
            if (!(o->model = cli_value(argc, argv, &i))) {
                *rc = 2;
                return false;
            }
        } else if (!strcmp(a, "--special")) {
            o->special = true;
        } else if (encode && !strcmp(a, "--ids")) {
            o->ids = true;
        } else if (encode && !strcmp(a, "--no-bos")) {
            o->no_bos = true;
        } else {
            fprintf(stderr, "tandem: unknown option '%s'\n%s", a, usage);
            *rc = 2;
            return false;
        }
    }
    if (!o->model) {
        fputs(usage, stderr);
        *rc = 2;
        return false;
    }
    return true;
}

static tnd_tokenizer *open_tokenizer(const char *path, tnd_model **model) {
    tnd_tokenizer *tok = NULL;
    *model = cli_open_model(path);
    if (*model && tnd_tokenizer_init(*model, &tok) != TND_OK) cli_error(path);
    return tok;
}

int tnd_cmd_tokenize(int argc, char **argv) {
    tok_options o;
    int rc = 1;
    if (!parse_options(argc, argv, true, &o, &rc)) return rc;
    rc = 1;
    tnd_model *model = NULL;
    int32_t *ids = NULL;
    size_t len = 0;
    char *text = read_stdin(&len);
    tnd_tokenizer *tok = text ? open_tokenizer(o.model, &model) : NULL;
    if (!tok) goto cleanup;
    uint32_t flags = (o.no_bos ? 0 : TND_TOKENIZE_ADD_SPECIAL) | (o.special ? TND_TOKENIZE_PARSE_SPECIAL : 0);
    int32_t n = tnd_tokenizer_encode(tok, text, len, flags, NULL, 0);
    if (n == TND_TOKENIZE_ERROR) {
        cli_error("tokenize");
        goto cleanup;
    }
    n = n < 0 ? -n : n;
    ids = malloc(sizeof *ids * ((size_t)n + 1));
    if (!ids || tnd_tokenizer_encode(tok, text, len, flags, ids, n) != n) {
        cli_error("tokenize");
        goto cleanup;
    }
    for (int32_t i = 0; i < n; i++) {
        if (o.ids) {
            printf(i ? " %d" : "%d", ids[i]);
            continue;
        }
        size_t pn = 0;
        const char *piece = tnd_tokenizer_piece(tok, ids[i], TND_DETOKENIZE_SPECIAL, &pn);
        printf("%6d '", ids[i]);
        print_piece(piece, pn);
        puts("'");
    }
    if (o.ids) putchar('\n');
    rc = fflush(stdout) == 0 ? 0 : 1;
cleanup:
    free(ids);
    free(text);
    tnd_tokenizer_free(tok);
    tnd_model_close(model);
    return rc;
}

/* Parses space-, comma- or newline-separated ids from text into a malloc'ed array; -1 with a message on a
 * malformed id. */
static int64_t parse_id_list(const char *text, int32_t **out) {
    size_t cap = strlen(text) / 2 + 1, n = 0;
    int32_t *ids = malloc(cap * sizeof *ids);
    if (!ids) return -1;
    for (const char *p = text;;) {
        while (*p == ' ' || *p == ',' || *p == '\t' || *p == '\n' || *p == '\r') p++;
        if (!*p) break;
        char *end = NULL;
        long long v = strtoll(p, &end, 10);
        if (end == p || v < 0 || v > INT32_MAX || (*end && !strchr(" ,\t\r\n", *end))) {
            fprintf(stderr, "tandem: detokenize: '%.20s' is not a token id\n", p);
            free(ids);
            return -1;
        }
        ids[n++] = (int32_t)v;
        p = end;
    }
    *out = ids;
    return (int64_t)n;
}

int tnd_cmd_detokenize(int argc, char **argv) {
    tok_options o;
    int rc = 1;
    if (!parse_options(argc, argv, false, &o, &rc)) return rc;
    rc = 1;
    tnd_model *model = NULL;
    int32_t *ids = NULL;
    char *out = NULL;
    size_t len = 0;
    char *text = read_stdin(&len);
    int64_t n = text ? parse_id_list(text, &ids) : -1;
    if (n > INT32_MAX) fprintf(stderr, "tandem: detokenize: too many ids\n");
    tnd_tokenizer *tok = n >= 0 && n <= INT32_MAX ? open_tokenizer(o.model, &model) : NULL;
    if (!tok) goto cleanup;
    uint32_t flags = o.special ? TND_DETOKENIZE_SPECIAL : 0;
    int32_t need = tnd_tokenizer_decode(tok, ids, (int32_t)n, flags, NULL, 0);
    if (need == TND_TOKENIZE_ERROR) {
        cli_error("detokenize");
        goto cleanup;
    }
    need = need < 0 ? -need : need;
    out = malloc((size_t)need + 1);
    if (!out || tnd_tokenizer_decode(tok, ids, (int32_t)n, flags, out, need) != need) {
        cli_error("detokenize");
        goto cleanup;
    }
    rc = fwrite(out, 1, (size_t)need, stdout) == (size_t)need && fflush(stdout) == 0 ? 0 : 1;
cleanup:
    free(out);
    free(ids);
    free(text);
    tnd_tokenizer_free(tok);
    tnd_model_close(model);
    return rc;
}

/* test_grammar.c: the grammar engine. Parse errors name the line, column or rule; strings are accepted exactly as
 * an independent oracle says (POSIX regular expressions for a regular grammar, on every string up to a length over
 * a small alphabet; hand-written JSON cases); the token mask walked over the trie equals every token checked one by
 * one; and generation with the real stories260K model follows the grammar, greedy and sampled, with speculation,
 * after a rollback and in a clone. */
#include "harness.h"

#include "tandem.h"
#include "text/grammar.h"

#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static tnd_grammar *parse(const char *text) {
    tnd_grammar *g = NULL;
    if (!CHECK_OK(tnd_grammar_parse(text, strlen(text), NULL, &g))) fprintf(stderr, "  %s\n", tnd_last_error());
    return g;
}

static void test_errors(void) {
    static const struct {
        const char *text, *message;
    } cases[] = {
        {"root ::= foo\n", "rule 'foo' is used on line 1 but never defined"},
        {"root ::= \"a\"\nroot ::= \"b\"\n", "rule 'root' is defined twice"},
        {"root ::= root \"a\" | \"b\"\n", "left-recursive"},
        {"root ::= x\nx ::= y? root\ny ::= \"a\"\n", "left-recursive"},
        {"root ::= \"a\n", "line 1, column 12: unterminated string"},
        {"root ::= [a-\n", "unterminated character class"},
        {"root ::= [z-a]\n", "runs backwards"},
        {"root ::= \"a\" )\n", "expected the end of the line"},
        {"root := \"a\"\n", "line 1, column 6: expected '::='"},
        {"\n\nroot ::= \"\\q\"\n", "line 3, column 12: unknown escape"},
        {"root ::= \"a\"{3,2}\n", "n < m"},
        {"root ::= \"a\"{1001}\n", "above 1000"},
        {"start ::= \"a\"\n", "no rule named 'root'"},
        {"root ::= ( \"a\"\n", "expected ')'"},
        {"root ::= \"\\xZZ\"\n", "bad hexadecimal escape"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tnd_grammar *g = NULL;
        tnd_status st = tnd_grammar_parse(cases[i].text, strlen(cases[i].text), NULL, &g);
        if (!CHECK(st == TND_ERR_INVALID_ARGUMENT && !g && strstr(tnd_last_error(), cases[i].message)))
            fprintf(stderr, "  case %zu: got '%s'\n", i, tnd_last_error());
        tnd_grammar_free(g);
    }
}

/* Every string over the alphabet up to max_len: the grammar completes it exactly when the regular expression
 * matches it, and calls it a prefix only when some extension is complete. */
static void test_against_regex(const char *grammar, const char *regex, const char *alphabet, int max_len) {
    tnd_grammar *g = parse(grammar);
    regex_t re;
    if (!g || !CHECK(regcomp(&re, regex, REG_EXTENDED | REG_NOSUB) == 0)) {
        tnd_grammar_free(g);
        return;
    }
    int k = (int)strlen(alphabet);
    long total = 0, complete = 0, mismatches = 0;
    char s[16];
    for (int len = 0; len <= max_len; len++) {
        long count = 1;
        for (int i = 0; i < len; i++) count *= k;
        for (long n = 0; n < count; n++) {
            long x = n;
            for (int i = 0; i < len; i++, x /= k) s[i] = alphabet[x % k];
            s[len] = 0;
            bool want = regexec(&re, s, 0, NULL, 0) == 0;
            tnd_grammar_match m = tnd_grammar_check(g, s, (size_t)len);
            total++;
            complete += want;
            if ((m == TND_GRAMMAR_COMPLETE) != want) {
                if (mismatches++ < 5) fprintf(stderr, "  '%s': grammar %d, regex %d\n", s, (int)m, want);
            }
        }
    }
    CHECK(mismatches == 0 && complete > 0 && complete < total);
    printf("regex %s: %ld strings, %ld in the language, %ld disagreements\n", regex, total, complete, mismatches);
    regfree(&re);
    tnd_grammar_free(g);
}

static void test_json(void) {
    const char *text = tnd_grammar_json_text();
    tnd_grammar *g = parse(text);
    if (!g) return;
    static const char *const complete[] = {
        "{}", "{\"a\": 1}", "{\"a\":[1, 2.5, -3e10, true, false, null, \"x\\n\\u00e9\"]}", " {\"k\": {\"n\": {}}} ",
        "{\"\xc3\xa9t\xc3\xa9\": \"\xe2\x82\xac\"}", "{\"a\": -0.5E-3}"};
    static const char *const prefixes[] = {"", "{", "{\"a", "{\"a\": [1,", "{\"a\": tr", "{\"\xc3"};
    static const char *const rejected[] = {"[1]", "{a: 1}", "{\"a\": 01}", "{\"a\": 1,}", "{\"a\" 1}", "{}}",
                                           "{\"a\": tru }", "{\"a\": \"\x01\"}", "{\"a\": .5}", "{\"\xff\": 1}",
                                           "{\"a\": 1}x"};
    for (size_t i = 0; i < sizeof complete / sizeof *complete; i++)
        if (!CHECK(tnd_grammar_check(g, complete[i], strlen(complete[i])) == TND_GRAMMAR_COMPLETE))
            fprintf(stderr, "  not complete: %s\n", complete[i]);
    for (size_t i = 0; i < sizeof prefixes / sizeof *prefixes; i++)
        if (!CHECK(tnd_grammar_check(g, prefixes[i], strlen(prefixes[i])) == TND_GRAMMAR_PREFIX))
            fprintf(stderr, "  not a prefix: %s\n", prefixes[i]);
    for (size_t i = 0; i < sizeof rejected / sizeof *rejected; i++)
        if (!CHECK(tnd_grammar_check(g, rejected[i], strlen(rejected[i])) == TND_GRAMMAR_REJECTED))
            fprintf(stderr, "  not rejected: %s\n", rejected[i]);
    tnd_grammar_free(g);
}

/* JSON Schema: instances that validate are complete texts of the compiled grammar, instances that do not are
 * rejected (hand-checked against the schema's meaning); keywords the compiler cannot express are refused by
 * name and path. */
static void test_json_schema(void) {
    static const char schema[] =
        "{\"type\": \"object\", \"properties\": {"
        "\"name\": {\"type\": \"string\", \"minLength\": 1, \"maxLength\": 5},"
        "\"age\": {\"type\": \"integer\", \"minimum\": 0},"
        "\"tags\": {\"type\": \"array\", \"items\": {\"enum\": [\"a\", \"b\", 3]}, \"minItems\": 1, \"maxItems\": 2},"
        "\"when\": {\"type\": \"string\", \"format\": \"date\"},"
        "\"kind\": {\"const\": \"x\"},"
        "\"next\": {\"anyOf\": [{\"$ref\": \"#\"}, {\"type\": \"null\"}]},"
        "\"score\": {\"type\": [\"number\", \"boolean\"]}},"
        "\"required\": [\"name\", \"age\"], \"additionalProperties\": false}";
    tnd_grammar *g = NULL;
    if (!CHECK_OK(tnd_grammar_from_json_schema(schema, strlen(schema), &g))) {
        fprintf(stderr, "  %s\n", tnd_last_error());
        return;
    }
    static const char *const valid[] = {
        "{\"name\": \"Lily\", \"age\": 3}",
        "{\"name\":\"Lily\",\"age\":0,\"tags\":[\"a\",3],\"when\":\"2024-02-29\",\"kind\":\"x\"}",
        "{ \"name\": \"a\", \"age\": 12, \"next\": {\"name\": \"b\", \"age\": 1, \"next\": null}, \"score\": -1.5e3 }",
        "{\"name\": \"a\",\n  \"age\": 7,\n  \"score\": true}",
    };
    static const char *const invalid[] = {
        "{\"age\": 3}",                                  /* name required */
        "{\"name\": \"Lily\"}",                            /* age required */
        "{\"name\": \"\", \"age\": 3}",                    /* minLength */
        "{\"name\": \"Lilyan\", \"age\": 3}",              /* maxLength */
        "{\"name\": \"L\", \"age\": -3}",                  /* minimum 0 */
        "{\"name\": \"L\", \"age\": 3.5}",                 /* integer */
        "{\"name\": \"L\", \"age\": 3, \"tags\": []}",     /* minItems */
        "{\"name\": \"L\", \"age\": 3, \"tags\": [\"a\", \"b\", \"a\"]}", /* maxItems */
        "{\"name\": \"L\", \"age\": 3, \"tags\": [\"c\"]}", /* enum */
        "{\"name\": \"L\", \"age\": 3, \"when\": \"2024-13-01\"}", /* date */
        "{\"name\": \"L\", \"age\": 3, \"kind\": \"y\"}",  /* const */
        "{\"name\": \"L\", \"age\": 3, \"other\": 1}",     /* additionalProperties false */
        "{\"name\": \"L\", \"age\": 3, \"score\": \"1\"}", /* type list */
        "{\"name\": \"L\", \"age\": 3, \"next\": {\"age\": 1}}", /* the $ref's required */
    };
    for (size_t i = 0; i < sizeof valid / sizeof *valid; i++)
        if (!CHECK(tnd_grammar_check(g, valid[i], strlen(valid[i])) == TND_GRAMMAR_COMPLETE))
            fprintf(stderr, "  valid instance %zu not complete\n", i);
    for (size_t i = 0; i < sizeof invalid / sizeof *invalid; i++)
        if (!CHECK(tnd_grammar_check(g, invalid[i], strlen(invalid[i])) != TND_GRAMMAR_COMPLETE))
            fprintf(stderr, "  invalid instance %zu accepted\n", i);
    tnd_grammar_free(g);

    /* integer bounds: every integer from -1500 to 1500 (and some far ones) is complete exactly when in range */
    static const struct {
        const char *bounds;
        long long lo, hi;
    } ranges[] = {
        {"\"minimum\": 3, \"maximum\": 1200", 3, 1200}, {"\"minimum\": -1234, \"maximum\": -7", -1234, -7},
        {"\"minimum\": -45, \"maximum\": 1009", -45, 1009}, {"\"exclusiveMinimum\": 99, \"exclusiveMaximum\": 1000", 100, 999},
        {"\"minimum\": 250", 250, 9999999999999999LL}, {"\"maximum\": -999", -9999999999999999LL, -999},
        {"\"minimum\": 0, \"maximum\": 0", 0, 0}, {"\"minimum\": 2.5, \"maximum\": 19.9", 3, 19},
    };
    long checked = 0, wrong = 0;
    for (size_t i = 0; i < sizeof ranges / sizeof *ranges; i++) {
        char sch[160];
        snprintf(sch, sizeof sch, "{\"type\": \"integer\", %s}", ranges[i].bounds);
        tnd_grammar *ig = NULL;
        if (!CHECK_OK(tnd_grammar_from_json_schema(sch, strlen(sch), &ig))) {
            fprintf(stderr, "  %s: %s\n", sch, tnd_last_error());
            continue;
        }
        static const long long far[] = {-9999999999999999LL, -100000, 100000, 123456789012345LL, 9999999999999999LL};
        for (long long v = -1500; v <= 1500 + 5; v++) {
            long long x = v <= 1500 ? v : far[v - 1501];
            char num[32];
            snprintf(num, sizeof num, "%lld", x);
            bool want = x >= ranges[i].lo && x <= ranges[i].hi;
            checked++;
            if ((tnd_grammar_check(ig, num, strlen(num)) == TND_GRAMMAR_COMPLETE) != want && wrong++ < 5)
                fprintf(stderr, "  %s: %s\n", sch, num);
        }
        tnd_grammar_free(ig);
    }
    CHECK(wrong == 0);
    printf("integer ranges: %ld numbers checked, %ld wrong\n", checked, wrong);

    static const struct {
        const char *schema, *message;
    } refused[] = {
        {"{\"type\": \"string\", \"pattern\": \"^a\"}", "at /: 'pattern' is not supported"},
        {"{\"properties\": {\"n\": {\"type\": \"number\", \"maximum\": 5}}}", "at /properties/n: 'maximum'"},
        {"{\"type\": \"integer\", \"minimum\": 5, \"maximum\": 4}", "no integer lies between"},
        {"{\"type\": \"object\", \"required\": [\"x\"]}", "required property 'x' is not among the properties"},
        {"{\"$ref\": \"#/$defs/missing\"}", "does not point into this schema"},
        {"{\"type\": \"strin\"}", "unknown type 'strin'"},
        {"{\"type\": \"array\", \"uniqueItems\": true}", "'uniqueItems' is not supported"},
        {"{\"type\": ", "not JSON"},
        {"false", "allows nothing"},
    };
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
        tnd_grammar *r = NULL;
        tnd_status st = tnd_grammar_from_json_schema(refused[i].schema, strlen(refused[i].schema), &r);
        if (!CHECK(st == TND_ERR_INVALID_ARGUMENT && !r && strstr(tnd_last_error(), refused[i].message)))
            fprintf(stderr, "  schema %zu: '%s'\n", i, tnd_last_error());
        tnd_grammar_free(r);
    }
}

/* The mask the trie walk gives equals every token checked on its own through tnd_grammar_check (the text so far
 * plus the token's piece), at states along a JSON text, with the stories260K vocabulary. */
static void test_mask(const tnd_tokenizer *tok) {
    tnd_grammar *g = parse(tnd_grammar_json_text());
    int32_t nv = tnd_tokenizer_n_vocab(tok);
    g_vocab *v = NULL;
    g_matcher *m = NULL;
    uint8_t *allowed = malloc((size_t)nv);
    static const char text[] = "{\"name\": \"Lily\", \"age\": 3, \"toys\": [\"ball\", {}], \"ok\": true}";
    tnd_allocator a = {0};
    if (!g || !allowed || !CHECK_OK(g_vocab_init(tok, &a, &v)) || !CHECK_OK(g_matcher_init(g, v, false, &a, &m))) {
        free(allowed);
        g_matcher_free(m);
        g_vocab_free(v);
        tnd_grammar_free(g);
        return;
    }
    /* the text as tokens, fed a token at a time; the mask checked before each against the pieces so far */
    int32_t ids[256];
    int32_t n = tnd_tokenizer_encode(tok, text, strlen(text), 0, ids, 256);
    char so_far[512];
    size_t shown = 0;
    long checked = 0, mismatches = 0, n_allowed = 0;
    char buf[512];
    for (int32_t i = 0; CHECK(n > 0) && i <= n; i++) {
        if (!CHECK(g_matcher_mask(m, true, allowed))) break;
        for (int32_t t = 0; t < nv; t++) {
            size_t len = 0;
            const char *piece = tnd_tokenizer_piece(tok, t, 0, &len);
            bool want;
            if (tnd_tokenizer_is_eog(tok, t)) want = tnd_grammar_check(g, so_far, shown) == TND_GRAMMAR_COMPLETE;
            else if (!len || shown + len > sizeof buf) want = false;
            else {
                memcpy(buf, so_far, shown);
                memcpy(buf + shown, piece, len);
                want = tnd_grammar_check(g, buf, shown + len) != TND_GRAMMAR_REJECTED;
            }
            checked++;
            n_allowed += allowed[t];
            if ((allowed[t] != 0) != want && mismatches++ < 5)
                fprintf(stderr, "  after %zu bytes, token %d '%.*s': mask %d, check %d\n", shown, t, (int)len, piece,
                        allowed[t], want);
            if ((allowed[t] != 0) != g_matcher_allows(m, t, tnd_tokenizer_is_eog(tok, t))) mismatches++;
        }
        if (i == n) break;
        size_t len = 0;
        const char *piece = tnd_tokenizer_piece(tok, ids[i], 0, &len);
        if (!CHECK(g_matcher_accept(m, ids[i]) && shown + len <= sizeof so_far)) break;
        memcpy(so_far + shown, piece, len);
        shown += len;
    }
    CHECK(mismatches == 0 && n_allowed > 0);
    printf("mask: %ld token checks at %d states, %ld allowed, %ld disagreements\n", checked, n + 1, n_allowed,
           mismatches);
    free(allowed);
    g_matcher_free(m);
    g_vocab_free(v);
    tnd_grammar_free(g);
}

/* ------------------------------------------------------------------------------------------------------------
 * Generation
 * ---------------------------------------------------------------------------------------------------------- */

typedef struct model {
    tnd_model *m;
    tnd_context *ctx;
    tnd_tokenizer *tok;
} model;

static bool generate(model *md, const tnd_grammar *g, uint64_t seed, int32_t max_tokens, bool speculate,
                     char *text, size_t cap, tnd_finish_reason *finish) {
    tnd_session *s = NULL;
    int32_t prompt[32];
    int32_t n = tnd_tokenizer_encode(md->tok, "Once upon a time", 16, TND_TOKENIZE_ADD_SPECIAL, prompt, 32);
    tnd_generate_params p = tnd_generate_default_params();
    p.grammar = g;
    p.max_tokens = max_tokens;
    p.sampling.seed = seed;
    if (!seed) p.sampling.temperature = 0;
    tnd_speculation_params sp = tnd_speculation_default_params();
    sp.source = TND_DRAFT_NGRAM;
    sp.adaptive = 0;
    sp.ngram_min = 1;
    bool ok = CHECK(n > 0) && CHECK_OK(tnd_session_init(md->ctx, md->tok, 0, 0, &s)) &&
              (!speculate || CHECK_OK(tnd_session_set_speculation(s, &sp))) &&
              CHECK_OK(tnd_session_start(s, &p, prompt, n)) && CHECK_OK(tnd_session_generate(s));
    if (ok) {
        snprintf(text, cap, "%s", tnd_session_text(s, NULL));
        *finish = tnd_session_finish_reason(s);
    }
    tnd_session_free(s);
    return ok;
}

/* The text of a generation is in the language (complete where the generation ended by itself, the start of a text
 * of it where the budget ended it). */
static bool follows(const tnd_grammar *g, const char *text, tnd_finish_reason finish) {
    tnd_grammar_match m = tnd_grammar_check(g, text, strlen(text));
    return finish == TND_FINISH_EOG ? m == TND_GRAMMAR_COMPLETE : m != TND_GRAMMAR_REJECTED;
}

static void test_generation(model *md) {
    static const char *const grammars[] = {
        /* a forced frame with the model's own words inside */
        "root ::= \" there was a \" word \" named \" name \".\"\nword ::= [a-z]{2,8}\nname ::= [A-Z] [a-z]{1,8}\n",
        /* numbers only */
        "root ::= \" \" [0-9]{1,3} (\", \" [0-9]{1,3}){2,5}\n",
        /* yes or no, then the end */
        "root ::= \" yes\" | \" no\"\n",
    };
    char text[4096], other[4096];
    tnd_finish_reason finish, other_finish;
    int n_ok = 0, n = 0;
    for (size_t i = 0; i < sizeof grammars / sizeof *grammars; i++) {
        tnd_grammar *g = parse(grammars[i]);
        if (!g) continue;
        for (uint64_t seed = 0; seed < 6; seed++) {
            if (!generate(md, g, seed, 80, false, text, sizeof text, &finish)) continue;
            n++;
            if (CHECK(follows(g, text, finish) && finish == TND_FINISH_EOG)) n_ok++;
            else fprintf(stderr, "  grammar %zu seed %llu: '%s' (%s)\n", i, (unsigned long long)seed, text,
                         tnd_finish_reason_name(finish));
            if (seed == 1) printf("grammar %zu: \"%s\"\n", i, text);
            /* speculation verifies drafts through the same grammar: the same text */
            if (generate(md, g, seed, 80, true, other, sizeof other, &other_finish))
                CHECK(!strcmp(text, other) && finish == other_finish);
        }
        tnd_grammar_free(g);
    }
    /* JSON: the model has never seen any, so its objects are whatever the grammar lets through */
    tnd_grammar *json = parse(tnd_grammar_json_text());
    for (uint64_t seed = 0; json && seed < 6; seed++) {
        if (!generate(md, json, seed, 120, false, text, sizeof text, &finish)) continue;
        n++;
        if (CHECK(follows(json, text, finish))) n_ok++;
        if (seed == 2) printf("json: \"%s\" (%s)\n", text, tnd_finish_reason_name(finish));
    }
    tnd_grammar_free(json);
    printf("generation: %d of %d texts follow their grammar\n", n_ok, n);
}

/* A generation with a grammar rolled back and stepped on, and a clone of it, give what one straight run gives. */
static void test_rollback_and_clone(model *md) {
    tnd_grammar *g = parse("root ::= \" \" [a-z]{1,6} (\" \" [a-z]{1,6}){3,12} \".\"\n");
    if (!g) return;
    char straight[4096];
    tnd_finish_reason finish;
    if (!generate(md, g, 5, 200, false, straight, sizeof straight, &finish)) {
        tnd_grammar_free(g);
        return;
    }
    tnd_session *s = NULL, *c = NULL;
    int32_t prompt[32];
    int32_t n = tnd_tokenizer_encode(md->tok, "Once upon a time", 16, TND_TOKENIZE_ADD_SPECIAL, prompt, 32);
    tnd_generate_params p = tnd_generate_default_params();
    p.grammar = g;
    p.max_tokens = 200;
    p.sampling.seed = 5;
    if (CHECK_OK(tnd_session_init(md->ctx, md->tok, 0, 0, &s)) && CHECK_OK(tnd_session_start(s, &p, prompt, n))) {
        for (int i = 0; i < 8; i++) CHECK_OK(tnd_session_step(s));
        CHECK_OK(tnd_session_rollback(s, 3));
        if (CHECK_OK(tnd_session_clone(s, 1, &c))) {
            CHECK_OK(tnd_session_generate(c));
            CHECK(!strcmp(tnd_session_text(c, NULL), straight));
        }
        CHECK_OK(tnd_session_generate(s));
        CHECK(!strcmp(tnd_session_text(s, NULL), straight) && tnd_session_finish_reason(s) == finish);
    }
    tnd_session_free(c);
    tnd_session_free(s);
    tnd_grammar_free(g);
}

int main(void) {
    test_errors();
    /* a regular grammar and its regular expression, over strings up to 7 characters of 6 letters */
    test_against_regex("root ::= (\"ab\" | [c-d]+ \"x\"?){1,3} tail\ntail ::= \"\" | \"y\" | [^a-dxy]\n",
                       "^(ab|[c-d]+x?){1,3}(y|[^a-dxy])?$", "abcdxyz", 7);
    test_against_regex("root ::= ([a-c] [^a]?)* \"d\"{2}\n", "^([a-c][^a]?)*d{2}$", "abcd", 8);
    test_against_regex("# comments and line breaks\nroot ::= x (\n  \"+\" x |\n  \"*\" x\n)*\nx ::= \"a\" | \"(\" y \")\"\n"
                       "y ::= \"a\" ([+*] \"a\")*\n",
                       "^(a|\\(a([+*]a)*\\))([+*](a|\\(a([+*]a)*\\)))*$", "a()+*", 7);
    test_json();
    test_json_schema();

    model md = {0};
    tnd_context_params cp = tnd_context_default_params();
    cp.n_ctx = 512;
    cp.n_seq_max = 2;
    cp.n_threads = 2;
    if (CHECK_OK(tnd_model_open(tnd_fixture("real/stories260K.gguf"), NULL, &md.m)) &&
        CHECK_OK(tnd_context_init(md.m, &cp, &md.ctx)) && CHECK_OK(tnd_tokenizer_init(md.m, &md.tok))) {
        test_mask(md.tok);
        test_generation(&md);
        test_rollback_and_clone(&md);
    }
    tnd_tokenizer_free(md.tok);
    tnd_context_free(md.ctx);
    tnd_model_close(md.m);
    return tnd_test_finish("test_grammar");
}

/* tool_calls.c: the server's reading of tool calls in a reply (tool_choice auto): blocks naming a known tool with
 * object arguments become calls, in order, with their arguments as compact JSON; anything else stays text. */
#include "harness.h"

#include "../apps/server/server.h"

#include <stdlib.h>
#include <string.h>

static void check(const srv_tools *t, const char *reply, const char *want_content, int32_t want_calls,
                  const char *first_name, const char *first_args) {
    srv_buf content = {0};
    srv_tool_call *calls = NULL;
    int32_t n = 0;
    if (CHECK(srv_tools_extract(t, reply, strlen(reply), &content, &calls, &n))) {
        bool ok = n == want_calls && !strcmp(content.data ? content.data : "", want_content) &&
                  (!first_name || (n && !strcmp(calls[0].name, first_name) && !strcmp(calls[0].arguments, first_args)));
        if (!CHECK(ok))
            fprintf(stderr, "  reply '%s': %d calls, content '%s'%s%s\n", reply, n, content.data ? content.data : "",
                    n ? ", first " : "", n ? calls[0].arguments : "");
    }
    srv_tool_calls_free(calls, n);
    srv_buf_free(&content);
}

int main(void) {
    char *names[] = {strdup("get_weather"), strdup("count")};
    srv_tools t = {.choice = SRV_TOOLS_AUTO, .format = &srv_tool_format_hermes, .names = names, .n = 2};
    check(&t, "Sure.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>",
          "Sure.", 1, "get_weather", "{\"city\":\"Paris\"}");
    check(&t, "<tool_call>{\"name\":\"count\",\"arguments\":{}}</tool_call>\n<tool_call>\n{\"name\": \"get_weather\", "
              "\"parameters\": {\"city\": \"Oslo\", \"n\": [1, 2]}}\n</tool_call>",
          "", 2, "count", "{}");
    check(&t, "no calls here", "no calls here", 0, NULL, NULL);
    check(&t, "<tool_call>{\"name\": \"unknown\", \"arguments\": {}}</tool_call>",
          "<tool_call>{\"name\": \"unknown\", \"arguments\": {}}</tool_call>", 0, NULL, NULL);
    check(&t, "<tool_call>{\"name\": \"count\", \"arguments\": \"x\"}</tool_call>",
          "<tool_call>{\"name\": \"count\", \"arguments\": \"x\"}</tool_call>", 0, NULL, NULL);
    check(&t, "<tool_call>{not json}</tool_call> after", "<tool_call>{not json}</tool_call> after", 0, NULL, NULL);
    check(&t, "cut <tool_call>{\"name\": \"count\", \"argu", "cut <tool_call>{\"name\": \"count\", \"argu", 0, NULL, NULL);
    /* Llama 3.x: the whole reply is one call, "parameters" its arguments, possibly after <|python_tag|> */
    srv_tools l = {.choice = SRV_TOOLS_AUTO, .format = &srv_tool_format_llama3, .names = names, .n = 2};
    check(&l, " {\"name\": \"get_weather\", \"parameters\": {\"city\": \"Rome\"}}\n", "", 1, "get_weather",
          "{\"city\":\"Rome\"}");
    check(&l, "<|python_tag|>{\"name\": \"count\", \"parameters\": {}}", "", 1, "count", "{}");
    check(&l, "It is sunny. {\"name\": \"count\", \"parameters\": {}}", "It is sunny. {\"name\": \"count\", \"parameters\": {}}",
          0, NULL, NULL);
    check(&l, "  Sunny.  ", "Sunny.", 0, NULL, NULL);
    /* an assistant's calls written back as each format writes them */
    srv_buf b = {0};
    CHECK(srv_tools_write_call(&t, "count", "{\"n\":1}", 0, 2, &b) && srv_tools_write_call(&t, "count", "{}", 1, 2, &b) &&
          !strcmp(b.data, "<tool_call>\n{\"name\": \"count\", \"arguments\": {\"n\":1}}\n</tool_call>\n"
                          "<tool_call>\n{\"name\": \"count\", \"arguments\": {}}\n</tool_call>"));
    srv_buf_free(&b);
    CHECK(srv_tools_write_call(&l, "count", "{}", 0, 1, &b) && !strcmp(b.data, "{\"name\": \"count\", \"parameters\": {}}"));
    srv_buf_free(&b);
    /* Mistral v3: one JSON array after [TOOL_CALLS], written back the same way */
    srv_tools mi = {.choice = SRV_TOOLS_AUTO, .format = &srv_tool_format_mistral, .names = names, .n = 2};
    check(&mi, "[TOOL_CALLS] [{\"name\": \"count\", \"arguments\": {\"n\": 2}}, {\"name\": \"get_weather\", "
               "\"arguments\": {}}]", "", 2, "count", "{\"n\":2}");
    check(&mi, "Let me see. [TOOL_CALLS] [{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}] ok",
          "Let me see.  ok", 1, "get_weather", "{\"city\":\"Oslo\"}");
    check(&mi, "[TOOL_CALLS] [{\"name\": \"nope\", \"arguments\": {}}]",
          "[TOOL_CALLS] [{\"name\": \"nope\", \"arguments\": {}}]", 0, NULL, NULL);
    check(&mi, "[TOOL_CALLS] [{\"name\": \"count\"", "[TOOL_CALLS] [{\"name\": \"count\"", 0, NULL, NULL);
    CHECK(srv_tools_write_call(&mi, "count", "{}", 0, 2, &b) && srv_tools_write_call(&mi, "get_weather", "{\"a\":1}", 1, 2, &b) &&
          !strcmp(b.data, "[TOOL_CALLS] [{\"name\": \"count\", \"arguments\": {}}, {\"name\": \"get_weather\", "
                          "\"arguments\": {\"a\":1}}]"));
    srv_buf_free(&b);
    /* what of a reply in progress can be streamed as content */
    static const struct {
        int format; /* 0 Hermes, 1 Llama 3.x, 2 Mistral */
        const char *text, *streamable;
    } partial[] = {
        {0, "  Hi there. <tool_call>{\"name\"", "Hi there."}, {0, "Hi <tool_", "Hi"}, {0, "Hi\n", "Hi"},
        {0, "Hi <b>", "Hi <b>"}, {1, " {\"name\"", ""}, {1, "<|python", ""}, {1, "Sunny day ", "Sunny day"},
        {1, "<b>sunny", "<b>sunny"}, {2, "Sure [TOOL_CALLS] [", "Sure"}, {2, "Sure [TOOL_", "Sure"},
    };
    for (size_t i = 0; i < sizeof partial / sizeof partial[0]; i++) {
        size_t from = 0, to = 0;
        const srv_tools *which = partial[i].format == 0 ? &t : partial[i].format == 1 ? &l : &mi;
        srv_tools_streamable(which, partial[i].text, strlen(partial[i].text), &from, &to);
        if (!CHECK(to - from == strlen(partial[i].streamable) &&
                   !memcmp(partial[i].text + from, partial[i].streamable, to - from)))
            fprintf(stderr, "  '%s': streamable [%zu, %zu)\n", partial[i].text, from, to);
    }
    srv_tools required = t;
    required.choice = SRV_TOOLS_REQUIRED;
    size_t from = 0, to = 0;
    srv_tools_streamable(&required, "Hi", 2, &from, &to);
    CHECK(to == from);
    free(names[0]);
    free(names[1]);
    return tnd_test_finish("tool_calls");
}

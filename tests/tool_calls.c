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
    srv_tools t = {.choice = SRV_TOOLS_AUTO, .names = names, .n = 2};
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
    free(names[0]);
    free(names[1]);
    return tnd_test_finish("tool_calls");
}

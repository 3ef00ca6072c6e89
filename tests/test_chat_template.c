/* test_chat_template.c: the built-in chat formats render a conversation to the exact text of the models' published
 * templates, real GGUF chat templates are recognised (and unknown ones refused with the list of names), whitespace,
 * system folding, reasoning and EOS rules hold, bad input fails clearly, the buffer-size convention holds, a
 * model's tokenizer.chat_template is read, and message contents cannot forge control tokens (tnd_chat_encode). */
#include "harness.h"

#include "gguf/gguf.h"
#include "tandem.h"
#include "text/tokenizer.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* ---------------------------------------------------------------------------------------------------------------
 * One conversation in every format
 *
 * The expected texts were written from each family's published Jinja template (as Hugging Face transformers renders
 * it: trim_blocks, lstrip_blocks) for this conversation with add_generation_prompt, minus the leading BOS that the
 * tokenizer adds. The assistant reply carries spaces on both sides so that the formats whose templates strip it
 * (Llama 3, Gemma, Command R, Llama 2, Mistral v3) differ from those that copy it. Where a template rejects a
 * system message (Gemma 2, Mistral v0.1) the text follows the family's later template (Gemma 3, Mistral's v1).
 * ------------------------------------------------------------------------------------------------------------- */

static const tnd_chat_message conversation[] = {
    {"system", "You are a helpful assistant."},
    {"user", "Hello!"},
    {"assistant", "  Hi there.  "},
    {"user", "What is 2+2?"},
};

/* DeepSeek's markers, with U+FF5C FULLWIDTH VERTICAL LINE and U+2581 LOWER ONE EIGHTH BLOCK */
#define DS_USER "<\xEF\xBD\x9CUser\xEF\xBD\x9C>"
#define DS_ASSISTANT "<\xEF\xBD\x9C" "Assistant\xEF\xBD\x9C>"
#define DS_EOS "<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>"

static const struct {
    const char *format;
    const char *expected;
} renderings[] = {
    {"chatml", "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
               "<|im_start|>user\nHello!<|im_end|>\n"
               "<|im_start|>assistant\n  Hi there.  <|im_end|>\n"
               "<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
               "<|im_start|>assistant\n"},
    {"qwen3", "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
              "<|im_start|>user\nHello!<|im_end|>\n"
              "<|im_start|>assistant\n  Hi there.  <|im_end|>\n"
              "<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
              "<|im_start|>assistant\n"},
    {"chatml-think", "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
                     "<|im_start|>user\nHello!<|im_end|>\n"
                     "<|im_start|>assistant\n  Hi there.  <|im_end|>\n"
                     "<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
                     "<|im_start|>assistant\n<think>\n"},
    {"llama2", "[INST] <<SYS>>\nYou are a helpful assistant.\n<</SYS>>\n\nHello! [/INST]"
               " Hi there. </s>"
               "<s>[INST] What is 2+2? [/INST]"},
    {"llama3", "<|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant.<|eot_id|>"
               "<|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|>"
               "<|start_header_id|>assistant<|end_header_id|>\n\nHi there.<|eot_id|>"
               "<|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|>"
               "<|start_header_id|>assistant<|end_header_id|>\n\n"},
    {"llama4", "<|header_start|>system<|header_end|>\n\nYou are a helpful assistant.<|eot|>"
               "<|header_start|>user<|header_end|>\n\nHello!<|eot|>"
               "<|header_start|>assistant<|header_end|>\n\n  Hi there.  <|eot|>"
               "<|header_start|>user<|header_end|>\n\nWhat is 2+2?<|eot|>"
               "<|header_start|>assistant<|header_end|>\n\n"},
    {"mistral-v0", "[INST] You are a helpful assistant.\n\nHello! [/INST]"
                   "  Hi there.  </s>"
                   "[INST] What is 2+2? [/INST]"},
    {"mistral-v1", " [INST] You are a helpful assistant.\n\nHello! [/INST]"
                   "   Hi there.  </s>"
                   " [INST] What is 2+2? [/INST]"},
    {"mistral-v3", "[INST] Hello![/INST]"
                   " Hi there.</s>"
                   "[INST] You are a helpful assistant.\n\nWhat is 2+2?[/INST]"},
    {"mistral-v3-tekken", "[INST]Hello![/INST]"
                          "  Hi there.  </s>"
                          "[INST]You are a helpful assistant.\n\nWhat is 2+2?[/INST]"},
    {"mistral-v7", "[SYSTEM_PROMPT] You are a helpful assistant.[/SYSTEM_PROMPT]"
                   "[INST] Hello![/INST]"
                   "   Hi there.  </s>"
                   "[INST] What is 2+2?[/INST]"},
    {"mistral-v7-tekken", "[SYSTEM_PROMPT]You are a helpful assistant.[/SYSTEM_PROMPT]"
                          "[INST]Hello![/INST]"
                          "  Hi there.  </s>"
                          "[INST]What is 2+2?[/INST]"},
    {"phi3", "<|system|>\nYou are a helpful assistant.<|end|>\n"
             "<|user|>\nHello!<|end|>\n"
             "<|assistant|>\n  Hi there.  <|end|>\n"
             "<|user|>\nWhat is 2+2?<|end|>\n"
             "<|assistant|>\n"},
    {"phi4-mini", "<|system|>You are a helpful assistant.<|end|>"
                  "<|user|>Hello!<|end|>"
                  "<|assistant|>  Hi there.  <|end|>"
                  "<|user|>What is 2+2?<|end|>"
                  "<|assistant|>"},
    {"phi4", "<|im_start|>system<|im_sep|>You are a helpful assistant.<|im_end|>"
             "<|im_start|>user<|im_sep|>Hello!<|im_end|>"
             "<|im_start|>assistant<|im_sep|>  Hi there.  <|im_end|>"
             "<|im_start|>user<|im_sep|>What is 2+2?<|im_end|>"
             "<|im_start|>assistant<|im_sep|>"},
    {"gemma", "<start_of_turn>user\nYou are a helpful assistant.\n\nHello!<end_of_turn>\n"
              "<start_of_turn>model\nHi there.<end_of_turn>\n"
              "<start_of_turn>user\nWhat is 2+2?<end_of_turn>\n"
              "<start_of_turn>model\n"},
    {"deepseek", "You are a helpful assistant."
                 "### Instruction:\nHello!\n"
                 "### Response:\n  Hi there.  \n<|EOT|>\n"
                 "### Instruction:\nWhat is 2+2?\n"
                 "### Response:\n"},
    {"deepseek2", "You are a helpful assistant.\n\n"
                  "User: Hello!\n\n"
                  "Assistant:   Hi there.  " DS_EOS
                  "User: What is 2+2?\n\n"
                  "Assistant:"},
    {"deepseek3", "You are a helpful assistant."
                  DS_USER "Hello!"
                  DS_ASSISTANT "  Hi there.  " DS_EOS
                  DS_USER "What is 2+2?"
                  DS_ASSISTANT},
    {"deepseek-r1", "You are a helpful assistant."
                    DS_USER "Hello!"
                    DS_ASSISTANT "  Hi there.  " DS_EOS
                    DS_USER "What is 2+2?"
                    DS_ASSISTANT "<think>\n"},
    {"deepseek-r1-original", "You are a helpful assistant."
                             DS_USER "Hello!"
                             DS_ASSISTANT "  Hi there.  " DS_EOS
                             DS_USER "What is 2+2?"
                             DS_ASSISTANT},
    {"deepseek-v3.1", "You are a helpful assistant."
                      DS_USER "Hello!"
                      DS_ASSISTANT "</think>  Hi there.  " DS_EOS
                      DS_USER "What is 2+2?"
                      DS_ASSISTANT "</think>"},
    {"zephyr", "<|system|>\nYou are a helpful assistant.</s>\n"
               "<|user|>\nHello!</s>\n"
               "<|assistant|>\n  Hi there.  </s>\n"
               "<|user|>\nWhat is 2+2?</s>\n"
               "<|assistant|>\n"},
    {"tulu", "<|system|>\nYou are a helpful assistant.\n"
             "<|user|>\nHello!\n"
             "<|assistant|>\n  Hi there.  <|endoftext|>\n"
             "<|user|>\nWhat is 2+2?\n"
             "<|assistant|>\n"},
    {"vicuna", "You are a helpful assistant.\n\n"
               "USER: Hello!\n"
               "ASSISTANT:   Hi there.  </s>\n"
               "USER: What is 2+2?\n"
               "ASSISTANT:"},
    {"vicuna-orca", "SYSTEM: You are a helpful assistant.\n"
                    "USER: Hello!\n"
                    "ASSISTANT:   Hi there.  </s>\n"
                    "USER: What is 2+2?\n"
                    "ASSISTANT:"},
    {"command-r", "<|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|>You are a helpful assistant.<|END_OF_TURN_TOKEN|>"
                  "<|START_OF_TURN_TOKEN|><|USER_TOKEN|>Hello!<|END_OF_TURN_TOKEN|>"
                  "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>Hi there.<|END_OF_TURN_TOKEN|>"
                  "<|START_OF_TURN_TOKEN|><|USER_TOKEN|>What is 2+2?<|END_OF_TURN_TOKEN|>"
                  "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>"},
    {"openchat", "GPT4 Correct System: You are a helpful assistant.<|end_of_turn|>"
                 "GPT4 Correct User: Hello!<|end_of_turn|>"
                 "GPT4 Correct Assistant:   Hi there.  <|end_of_turn|>"
                 "GPT4 Correct User: What is 2+2?<|end_of_turn|>"
                 "GPT4 Correct Assistant:"},
    {"granite", "<|start_of_role|>system<|end_of_role|>You are a helpful assistant.<|end_of_text|>\n"
                "<|start_of_role|>user<|end_of_role|>Hello!<|end_of_text|>\n"
                "<|start_of_role|>assistant<|end_of_role|>  Hi there.  <|end_of_text|>\n"
                "<|start_of_role|>user<|end_of_role|>What is 2+2?<|end_of_text|>\n"
                "<|start_of_role|>assistant<|end_of_role|>"},
    {"exaone3", "[|system|]You are a helpful assistant.[|endofturn|]\n"
                "[|user|]Hello!\n"
                "[|assistant|]  Hi there.  [|endofturn|]\n"
                "[|user|]What is 2+2?\n"
                "[|assistant|]"},
};

/* ---------------------------------------------------------------------------------------------------------------
 * Real chat templates (the tokenizer.chat_template strings of the named models' GGUF or tokenizer_config files) and
 * the format each must be recognised as (NULL: not supported, which must be refused). Short templates are whole;
 * long ones are cut to a contiguous piece around their turn markers (the label gives its size); the Qwen2.5 and
 * DeepSeek-R1-Distill templates are kept whole.
 * ------------------------------------------------------------------------------------------------------------- */

static const struct {
    const char *model;
    const char *format;
    const char *jinja;
} real_templates[] = {
    {"Qwen2.5 0.5B Instruct (whole)", "chatml",
     "{%- if tools %}\n"
     "    {{- '<|im_start|>system\\n' }}\n"
     "    {%- if messages[0]['role'] == 'system' %}\n"
     "        {{- messages[0]['content'] }}\n"
     "    {%- else %}\n"
     "        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}\n"
     "    {%- endif %}\n"
     "    {{- \"\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user query.\\"
     "n\\nYou are provided with function signatures within <tools></tools> XML tags:\\n<tools>\" }}\n"
     "    {%- for tool in tools %}\n"
     "        {{- \"\\n\" }}\n"
     "        {{- tool | tojson }}\n"
     "    {%- endfor %}\n"
     "    {{- \"\\n</tools>\\n\\nFor each function call, return a json object with function name and a"
     "rguments within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{{\\\"name\\\": <function-name"
     ">, \\\"arguments\\\": <args-json-object>}}\\n</tool_call><|im_end|>\\n\" }}\n"
     "{%- else %}\n"
     "    {%- if messages[0]['role'] == 'system' %}\n"
     "        {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}\n"
     "    {%- else %}\n"
     "        {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assi"
     "stant.<|im_end|>\\n' }}\n"
     "    {%- endif %}\n"
     "{%- endif %}\n"
     "{%- for message in messages %}\n"
     "    {%- if (message.role == \"user\") or (message.role == \"system\" and not loop.first) or (mes"
     "sage.role == \"assistant\" and not message.tool_calls) %}\n"
     "        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}\n"
     "    {%- elif message.role == \"assistant\" %}\n"
     "        {{- '<|im_start|>' + message.role }}\n"
     "        {%- if message.content %}\n"
     "            {{- '\\n' + message.content }}\n"
     "        {%- endif %}\n"
     "        {%- for tool_call in message.tool_calls %}\n"
     "            {%- if tool_call.function is defined %}\n"
     "                {%- set tool_call = tool_call.function %}\n"
     "            {%- endif %}\n"
     "            {{- '\\n<tool_call>\\n{\"name\": \"' }}\n"
     "            {{- tool_call.name }}\n"
     "            {{- '\", \"arguments\": ' }}\n"
     "            {{- tool_call.arguments | tojson }}\n"
     "            {{- '}\\n</tool_call>' }}\n"
     "        {%- endfor %}\n"
     "        {{- '<|im_end|>\\n' }}\n"
     "    {%- elif message.role == \"tool\" %}\n"
     "        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != \"tool\") %}\n"
     "            {{- '<|im_start|>user' }}\n"
     "        {%- endif %}\n"
     "        {{- '\\n<tool_response>\\n' }}\n"
     "        {{- message.content }}\n"
     "        {{- '\\n</tool_response>' }}\n"
     "        {%- if loop.last or (messages[loop.index0 + 1].role != \"tool\") %}\n"
     "            {{- '<|im_end|>\\n' }}\n"
     "        {%- endif %}\n"
     "    {%- endif %}\n"
     "{%- endfor %}\n"
     "{%- if add_generation_prompt %}\n"
     "    {{- '<|im_start|>assistant\\n' }}\n"
     "{%- endif %}\n"},
    {"DeepSeek-R1-Distill-Qwen-32B (whole)", "deepseek-r1",
     "{% if not add_generation_prompt is defined -%}\n"
     "  {%- set add_generation_prompt = false -%}\n"
     "{%- endif -%}\n"
     "{%- set ns = namespace(is_first=false, is_tool=false, is_output_first=true, system_prompt='') -%"
     "}\n"
     "{%- for message in messages -%}\n"
     "  {%- if message['role'] == 'system' -%}\n"
     "    {%- set ns.system_prompt = message['content'] -%}\n"
     "  {%- endif -%}\n"
     "{%- endfor -%}{{bos_token}}{{ns.system_prompt}}\n"
     "{%- for message in messages -%}\n"
     "  {%- if message['role'] == 'user' -%}\n"
     "    {%- set ns.is_tool = false -%}{{'<｜User｜>' + message['content']}}\n"
     "  {%- endif -%}\n"
     "  {%- if message['role'] == 'assistant' and message['tool_calls'] -%}\n"
     "    {%- set ns.is_tool = false -%}\n"
     "    {%- for tool in message['tool_calls']-%}\n"
     "      {%- if not ns.is_first -%}\n"
     "        {{'<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>'"
     " + tool['function']['name'] + '\\n' + '```json' + '\\n' + tool['function']['arguments'] + '\\n' "
     "+ '```' + '<｜tool▁call▁end｜>'}}\n"
     "        {%- set ns.is_first = true -%}\n"
     "      {%- else -%}\n"
     "        {{'\\n' + '<｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name"
     "'] + '\\n' + '```json' + '\\n' + tool['function']['arguments'] + '\\n' + '```' + '<｜tool▁call▁en"
     "d｜>'}}\n"
     "      {%- endif -%}\n"
     "    {%- endfor -%}\n"
     "    {{'<｜tool▁calls▁end｜><｜end▁of▁sentence｜>'}}\n"
     "  {%- endif -%}\n"
     "  {%- if message['role'] == 'assistant' and message['content'] is not none -%}\n"
     "    {%- if ns.is_tool -%}{{'<｜tool▁outputs▁end｜>' + message['content'] + '<｜end▁of▁sentence｜>'}}"
     "\n"
     "      {%- set ns.is_tool = false -%}\n"
     "    {%- else -%}\n"
     "      {%- set content = message['content'] -%}\n"
     "      {%- if '</think>' in content -%}\n"
     "        {%- set content = content.split('</think>')[-1] -%}\n"
     "      {%- endif -%}{{'<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>'}}\n"
     "    {%- endif -%}\n"
     "  {%- endif -%}\n"
     "  {%- if message['role'] == 'tool' -%}\n"
     "    {%- set ns.is_tool = true -%}\n"
     "    {%- if ns.is_output_first -%}{{'<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>' + message['cont"
     "ent'] + '<｜tool▁output▁end｜>'}}\n"
     "      {%- set ns.is_output_first = false -%}\n"
     "      {%- else -%}{{'\\n<｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}\n"
     "    {%- endif -%}\n"
     "  {%- endif -%}\n"
     "{%- endfor -%}\n"
     "{%- if ns.is_tool -%}{{'<｜tool▁outputs▁end｜>'}}\n"
     "{%- endif -%}\n"
     "{%- if add_generation_prompt and not ns.is_tool -%}{{'<｜Assistant｜><think>\\n'}}\n"
     "{%- endif %}"},
    {"OpenHermes 2.5 / Nous Hermes 2 Mixtral (whole)", "chatml",
     "{{bos_token}}{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n"
     "' + message['content'] + '<|im_end|>' + '\n"
     "'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n"
     "' }}{% endif %}"},
    {"SmolLM2 135M Instruct (whole)", "chatml",
     "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_sta"
     "rt|>system\n"
     "You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
     "' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n"
     "' + message['content'] + '<|im_end|>' + '\n"
     "'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n"
     "' }}{% endif %}"},
    {"Qwen3 0.6B (excerpt, 300 of 4116 bytes)", "qwen3",
     "{%- if loop.index0 > ns.last_query_index %}\n"
     "            {%- if loop.last or (not loop.last and reasoning_content) %}\n"
     "                {{- '<|im_start|>' + message.role + '\\n<think>\\n' + reasoning_content.strip('\\"
     "n') + '\\n</think>\\n\\n' + content.lstrip('\\n') }}\n"
     "            {%- else %}\n"
     "                "},
    {"QwQ 32B (excerpt, 305 of 2763 bytes)", "chatml-think",
     "\n"
     "        {{- message.content }}\n"
     "        {{- '\\n</tool_response>' }}\n"
     "        {%- if loop.last or (messages[loop.index0 + 1].role != \"tool\") %}\n"
     "            {{- '<|im_end|>\\n' }}\n"
     "        {%- endif %}\n"
     "    {%- endif %}\n"
     "{%- endfor %}\n"
     "{%- if add_generation_prompt %}\n"
     "    {{- '<|im_start|>assistant\\n<think>\\n' }}"},
    {"Llama 2 7B chat (excerpt, 303 of 815 bytes)", "llama2",
     "{% endif %}{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + "
     "system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['"
     "content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.stri"
     "p() + ' [/INST]' }}"},
    {"Llama 3 8B Instruct (whole)", "llama3",
     "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_he"
     "ader_id|>' + message['role'] + '<|end_header_id|>\n"
     "\n"
     "'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_toke"
     "n + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_head"
     "er_id|>assistant<|end_header_id|>\n"
     "\n"
     "' }}{% endif %}"},
    {"Llama 3.1 8B Instruct (excerpt, 300 of 4614 bytes)", "llama3",
     "\n"
     "    {%- set messages = messages[1:] %}\n"
     "{%- else %}\n"
     "    {%- set system_message = \"\" %}\n"
     "{%- endif %}\n"
     "\n"
     "{#- System message + builtin tools #}\n"
     "{{- \"<|start_header_id|>system<|end_header_id|>\\n\\n\" }}\n"
     "{%- if builtin_tools is defined or tools is not none %}\n"
     "    {{- \"Environment: ipython\\n\" }}\n"
     "{%- endif %}\n"},
    {"Llama 4 Scout (excerpt, 300 of 4949 bytes)", "llama4",
     "\n"
     "    {%- set user_supplied_system_message = false %}\n"
     "{%- endif %}\n"
     "\n"
     "{#- System message if the user supplied one #}\n"
     "{%- if user_supplied_system_message %}\n"
     "    {{- \"<|header_start|>system<|header_end|>\\n\\n\" }}\n"
     "    {%- if tools is not none %}\n"
     "        {{- \"Environment: ipython\\n\" }}\n"
     "    {%- endif %}\n"
     "    "},
    {"Mistral 7B Instruct v0.1 (whole)", "mistral-v0",
     "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % "
     "2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/.."
     ".') }}{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]"
     "' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}{% else %}{{ rai"
     "se_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}"},
    {"Mixtral 8x7B Instruct v0.1 (excerpt, 301 of 1058 bytes)", "mistral-v1",
     "\n"
     "        {%- if loop.first and system_message is defined %}\n"
     "            {{- ' [INST] ' + system_message + '\\n\\n' + message['content'] + ' [/INST]' }}\n"
     "        {%- else %}\n"
     "            {{- ' [INST] ' + message['content'] + ' [/INST]' }}\n"
     "        {%- endif %}\n"
     "    {%- elif message['role'] == 'assistant' %}"},
    {"Mistral 7B Instruct v0.3 / Large 2407 (excerpt, 300 of 3959 bytes)", "mistral-v3",
     "{{- \"[INST] \" + system_message + \"\\n\\n\" + message[\"content\"] + \"[/INST]\" }}\n"
     "        {%- else %}\n"
     "            {{- \"[INST] \" + message[\"content\"] + \"[/INST]\" }}\n"
     "        {%- endif %}\n"
     "    {%- elif message.tool_calls is defined and message.tool_calls is not none %}\n"
     "        {{- \"[TOOL_CALLS] [\" }}\n"
     "        "},
    {"Mixtral 8x22B Instruct (excerpt, 301 of 1053 bytes)", "mistral-v3",
     "{%- endif %}\n"
     "    {%- if message['role'] == 'user' %}\n"
     "        {%- if loop.last and system_message is defined %}\n"
     "            {{- '[INST] ' + system_message + '\\n\\n' + message['content'] + '[/INST]' }}\n"
     "        {%- else %}\n"
     "            {{- '[INST] ' + message['content'] + '[/INST]' }}\n"
     "        {%- endif %}"},
    {"Mistral Nemo Instruct 2407 (excerpt, 300 of 3945 bytes)", "mistral-v3-tekken",
     "\n"
     "            {{- \"[/AVAILABLE_TOOLS]\" }}\n"
     "            {%- endif %}\n"
     "        {%- if loop.last and system_message is defined %}\n"
     "            {{- \"[INST]\" + system_message + \"\\n\\n\" + message[\"content\"] + \"[/INST]\" }}"
     "\n"
     "        {%- else %}\n"
     "            {{- \"[INST]\" + message[\"content\"] + \"[/INST]\" }}\n"
     "        "},
    {"Mistral Large Instruct 2411 (whole)", "mistral-v7",
     "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ '[INST] ' + mes"
     "sage['content'] + '[/INST]' }}{% elif message['role'] == 'system' %}{{ '[SYSTEM_PROMPT] ' + mess"
     "age['content'] + '[/SYSTEM_PROMPT]' }}{% elif message['role'] == 'assistant' %}{{ ' ' + message["
     "'content'] + eos_token }}{% else %}{{ raise_exception('Only user, system and assistant roles are"
     " supported!') }}{% endif %}{% endfor %}"},
    {"Mistral Small 24B Instruct 2501 (whole)", "mistral-v7-tekken",
     "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ '[INST]' + mess"
     "age['content'] + '[/INST]' }}{% elif message['role'] == 'system' %}{{ '[SYSTEM_PROMPT]' + messag"
     "e['content'] + '[/SYSTEM_PROMPT]' }}{% elif message['role'] == 'assistant' %}{{ message['content"
     "'] + eos_token }}{% else %}{{ raise_exception('Only user, system and assistant roles are support"
     "ed!') }}{% endif %}{% endfor %}"},
    {"Mistral Small 3.1 24B Instruct 2503 (excerpt, 1855 of 6660 bytes)", "mistral-v7-tekken",
     "{{- '[SYSTEM_PROMPT]' + system_message + '[/SYSTEM_PROMPT]' }}\n"
     "\n"
     "{%- set user_messages = loop_messages | selectattr(\"role\", \"equalto\", \"user\") | list %}\n"
     "\n"
     "{%- set filtered_messages = [] %}\n"
     "{%- for message in loop_messages %}\n"
     "    {%- if message[\"role\"] not in [\"tool\", \"tool_results\"] and not message.get(\"tool_call"
     "s\") %}\n"
     "        {%- set filtered_messages = filtered_messages + [message] %}\n"
     "    {%- endif %}\n"
     "{%- endfor %}\n"
     "\n"
     "{%- for message in filtered_messages %}\n"
     "    {%- if (message[\"role\"] == \"user\") != (loop.index0 % 2 == 0) %}\n"
     "        {{- raise_exception(\"After the optional system message, conversation roles must alterna"
     "te user/assistant/user/assistant/...\") }}\n"
     "    {%- endif %}\n"
     "{%- endfor %}\n"
     "\n"
     "{%- for message in loop_messages %}\n"
     "    {%- if message[\"role\"] == \"user\" %}\n"
     "        {%- if tools is not none and (message == user_messages[-1]) %}\n"
     "            {{- \"[AVAILABLE_TOOLS] [\" }}\n"
     "            {%- for tool in tools %}\n"
     "                {%- set tool = tool.function %}\n"
     "                {{- '{\"type\": \"function\", \"function\": {' }}\n"
     "                {%- for key, val in tool.items() if key != \"return\" %}\n"
     "                    {%- if val is string %}\n"
     "                        {{- '\"' + key + '\": \"' + val + '\"' }}\n"
     "                    {%- else %}\n"
     "                        {{- '\"' + key + '\": ' + val|tojson }}\n"
     "                    {%- endif %}\n"
     "                    {%- if not loop.last %}\n"
     "                        {{- \", \" }}\n"
     "                    {%- endif %}\n"
     "                {%- endfor %}\n"
     "                {{- \"}}\" }}\n"
     "                {%- if not loop.last %}\n"
     "                    {{- \", \" }}\n"
     "                {%- else %}\n"
     "                    {{- \"]\" }}\n"
     "                {%- endif %}\n"
     "            {%- endfor %}\n"
     "            {{- \"[/AVAILABLE_TOOLS]\" }}\n"
     "        {%- endif %}\n"
     "        {%- if message['content'] is string %}\n"
     "        {{- '[INST]' + message['content'] + '[/INST]' }}"},
    {"Phi-3 mini 4k instruct (whole)", "phi3",
     "{% for message in messages %}{% if message['role'] == 'system' %}{{'<|system|>\n"
     "' + message['content'] + '<|end|>\n"
     "'}}{% elif message['role'] == 'user' %}{{'<|user|>\n"
     "' + message['content'] + '<|end|>\n"
     "'}}{% elif message['role'] == 'assistant' %}{{'<|assistant|>\n"
     "' + message['content'] + '<|end|>\n"
     "'}}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n"
     "' }}{% else %}{{ eos_token }}{% endif %}"},
    {"Phi-4 mini instruct (whole)", "phi4-mini",
     "{% for message in messages %}{% if message['role'] == 'system' and 'tools' in message and messag"
     "e['tools'] is not none %}{{ '<|' + message['role'] + '|>' + message['content'] + '<|tool|>' + me"
     "ssage['tools'] + '<|/tool|>' + '<|end|>' }}{% else %}{{ '<|' + message['role'] + '|>' + message["
     "'content'] + '<|end|>' }}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>'"
     " }}{% else %}{{ eos_token }}{% endif %}"},
    {"Phi-4 (whole)", "phi4",
     "{% for message in messages %}{% if (message['role'] == 'system') %}{{'<|im_start|>system<|im_sep"
     "|>' + message['content'] + '<|im_end|>'}}{% elif (message['role'] == 'user') %}{{'<|im_start|>us"
     "er<|im_sep|>' + message['content'] + '<|im_end|><|im_start|>assistant<|im_sep|>'}}{% elif (messa"
     "ge['role'] == 'assistant') %}{{message['content'] + '<|im_end|>'}}{% endif %}{% endfor %}"},
    {"Gemma 2 2B it (whole)", "gemma",
     "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not suppo"
     "rted') }}{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.inde"
     "x0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assista"
     "nt/...') }}{% endif %}{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %"
     "}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\n"
     "' + message['content'] | trim + '<end_of_turn>\n"
     "' }}{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n"
     "'}}{% endif %}"},
    {"Gemma 3 270M it (excerpt, 301 of 1532 bytes)", "gemma",
     "\n"
     "                {{ item['text'] | trim }}\n"
     "            {%- endif -%}\n"
     "        {%- endfor -%}\n"
     "    {%- else -%}\n"
     "        {{ raise_exception(\"Invalid content type\") }}\n"
     "    {%- endif -%}\n"
     "    {{ '<end_of_turn>\n"
     "' }}\n"
     "{%- endfor -%}\n"
     "{%- if add_generation_prompt -%}\n"
     "    {{'<start_of_turn>model\n"
     "'}}\n"
     "{%- endif -%}"},
    {"DeepSeek Coder 1.3B instruct (excerpt, 300 of 1041 bytes)", "deepseek",
     "\n"
     "{{ message['content'] }}\n"
     "    {%- else %}\n"
     "        {%- if message['role'] == 'user' %}\n"
     "{{'### Instruction:\\n' + message['content'] + '\\n'}}\n"
     "        {%- else %}\n"
     "{{'### Response:\\n' + message['content'] + '\\n<|EOT|>\\n'}}\n"
     "        {%- endif %}\n"
     "    {%- endif %}\n"
     "{%- endfor %}\n"
     "{% if add_generation_prompt %}"},
    {"DeepSeek Coder V2 Lite (whole)", "deepseek2",
     "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}{"
     "{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ 'User: ' + messa"
     "ge['content'] + '\n"
     "\n"
     "' }}{% elif message['role'] == 'assistant' %}{{ 'Assistant: ' + message['content'] + eos_token }"
     "}{% elif message['role'] == 'system' %}{{ message['content'] + '\n"
     "\n"
     "' }}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"},
    {"DeepSeek V2.5 (excerpt, 849 of 2323 bytes)", "deepseek3",
     "{{'<｜User｜>' + message['content']}}    {%- endif %}    {%- if message['role'] == 'assistant' and"
     " message['content'] is none %}        {%- set ns.is_tool = false -%}        {%- for tool in mess"
     "age['tool_calls']%}            {%- if not ns.is_first %}{{'<｜Assistant｜><｜tool▁calls▁begin｜><｜to"
     "ol▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\\n' + '```json' "
     "+ '\\n' + tool['function']['arguments'] + '\\n' + '```' + '<｜tool▁call▁end｜>'}}            {%- s"
     "et ns.is_first = true -%}            {%- else %}{{'\\n' + '<｜tool▁call▁begin｜>' + tool['type'] +"
     " '<｜tool▁sep｜>' + tool['function']['name'] + '\\n' + '```json' + '\\n' + tool['function']['argum"
     "ents'] + '\\n' + '```' + '<｜tool▁call▁end｜>'}}{{'<｜tool▁calls▁end｜><｜end▁of▁sentence｜>'}}       "
     "            "},
    {"DeepSeek V3 (excerpt, 763 of 2301 bytes)", "deepseek3",
     "{{'<｜User｜>' + message['content']}}{%- endif %}{%- if message['role'] == 'assistant' and message"
     "['content'] is none %}{%- set ns.is_tool = false -%}{%- for tool in message['tool_calls']%}{%- i"
     "f not ns.is_first %}{{'<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>' + tool['type'] + '<"
     "｜tool▁sep｜>' + tool['function']['name'] + '\n"
     "' + '```json' + '\n"
     "' + tool['function']['arguments'] + '\n"
     "' + '```' + '<｜tool▁call▁end｜>'}}{%- set ns.is_first = true -%}{%- else %}{{'\n"
     "' + '<｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\n"
     "' + '```json' + '\n"
     "' + tool['function']['arguments'] + '\n"
     "' + '```' + '<｜tool▁call▁end｜>'}}{{'<｜tool▁calls▁end｜><｜end▁of▁sentence｜>'}}"},
    {"DeepSeek R1 (January 2025) (excerpt, 1098 of 2237 bytes)", "deepseek-r1-original",
     "{{'<｜User｜>' + message['content']}}{%- endif %}{%- if message['role'] == 'assistant' and message"
     "['content'] is none %}{%- set ns.is_tool = false -%}{%- for tool in message['tool_calls']%}{%- i"
     "f not ns.is_first %}{{'<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>' + tool['type'] + '<"
     "｜tool▁sep｜>' + tool['function']['name'] + '\\n' + '```json' + '\\n' + tool['function']['argument"
     "s'] + '\\n' + '```' + '<｜tool▁call▁end｜>'}}{%- set ns.is_first = true -%}{%- else %}{{'\\n' + '<"
     "｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\\n' + '```jso"
     "n' + '\\n' + tool['function']['arguments'] + '\\n' + '```' + '<｜tool▁call▁end｜>'}}{{'<｜tool▁call"
     "s▁end｜><｜end▁of▁sentence｜>'}}{%- endif %}{%- endfor %}{%- endif %}{%- if message['role'] == 'ass"
     "istant' and message['content'] is not none %}{%- if ns.is_tool %}{{'<｜tool▁outputs▁end｜>' + mess"
     "age['content'] + '<｜end▁of▁sentence｜>'}}{%- set ns.is_tool = false -%}{%- else %}{% set content "
     "= message['content'] %}{% if '</think>' in content %}"},
    {"DeepSeek V3.1 (excerpt, 317 of 2925 bytes)", "deepseek-v3.1",
     "{%- set ns.is_tool = false -%}{%- set ns.is_first = false -%}{%- set ns.is_last_user = true -%}{"
     "{'<｜User｜>' + message['content']}}{%- endif %}{%- if message['role'] == 'assistant' and message["
     "'tool_calls'] is defined and message['tool_calls'] is not none %}{%- if ns.is_last_user %}{{'<｜A"
     "ssistant｜></think>'}}"},
    {"TinyLlama 1.1B chat v1.0 (whole)", "zephyr",
     "{% for message in messages %}\n"
     "{% if message['role'] == 'user' %}\n"
     "{{ '<|user|>\n"
     "' + message['content'] + eos_token }}\n"
     "{% elif message['role'] == 'system' %}\n"
     "{{ '<|system|>\n"
     "' + message['content'] + eos_token }}\n"
     "{% elif message['role'] == 'assistant' %}\n"
     "{{ '<|assistant|>\n"
     "'  + message['content'] + eos_token }}\n"
     "{% endif %}\n"
     "{% if loop.last and add_generation_prompt %}\n"
     "{{ '<|assistant|>' }}\n"
     "{% endif %}\n"
     "{% endfor %}"},
    {"OLMo 2 7B Instruct (whole)", "tulu",
     "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'system' %}{{ '<|system|>\n"
     "' + message['content'] + '\n"
     "' }}{% elif message['role'] == 'user' %}{{ '<|user|>\n"
     "' + message['content'] + '\n"
     "' }}{% elif message['role'] == 'assistant' %}{% if not loop.last %}{{ '<|assistant|>\n"
     "'  + message['content'] + eos_token + '\n"
     "' }}{% else %}{{ '<|assistant|>\n"
     "'  + message['content'] + eos_token }}{% endif %}{% endif %}{% if loop.last and add_generation_p"
     "rompt %}{{ '<|assistant|>\n"
     "' }}{% endif %}{% endfor %}"},
    {"Vicuna 13B v1.1 (whole)", "vicuna",
     "{%- for message in messages %}{%- if message['role'] == 'system' -%}{{- '' + message['content'] "
     "+ '\n"
     "\n"
     "' -}}{%- else -%}{%- if message['role'] == 'user' -%}{{-'USER: ' + message['content'] + '\n"
     "'-}}{%- else -%}{{-'ASSISTANT: ' + message['content'] + '</s>\n"
     "' -}}{%- endif -%}{%- endif -%}{%- endfor -%}{%- if add_generation_prompt -%}{{-'ASSISTANT:'-}}{"
     "%- endif -%}"},
    {"Orca Vicuna (whole)", "vicuna-orca",
     "{%- for message in messages %}{%- if message['role'] == 'system' -%}{{-'SYSTEM: ' + message['con"
     "tent'] + '\n"
     "' -}}{%- else -%}{%- if message['role'] == 'user' -%}{{-'USER: ' + message['content'] + '\n"
     "'-}}{%- else -%}{{-'ASSISTANT: ' + message['content'] + '</s>\n"
     "' -}}{%- endif -%}{%- endif -%}{%- endfor -%}{%- if add_generation_prompt -%}{{-'ASSISTANT:'-}}{"
     "%- endif -%}"},
    {"Command R 35B (excerpt, 305 of 1254 bytes)", "command-r",
     "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% e"
     "ndif %}{% set content = message['content'] %}{% if message['role'] == 'user' %}{{ '<|START_OF_TU"
     "RN_TOKEN|><|USER_TOKEN|>' + content.strip() + '<|END_OF_TURN_TOKEN|>' }}{% elif message['role'] "
     "== 'assistant' %}"},
    {"OpenChat 3.5 (whole)", "openchat",
     "{{ bos_token }}{% for message in messages %}{{ 'GPT4 Correct ' + message['role'].title() + ': ' "
     "+ message['content'] + '<|end_of_turn|>'}}{% endfor %}{% if add_generation_prompt %}{{ 'GPT4 Cor"
     "rect Assistant:' }}{% endif %}"},
    {"Granite 3.3 2B instruct (excerpt, 300 of 4571 bytes)", "granite",
     "\n"
     " {%- endif %}\n"
     " {%- if documents %}\n"
     "     {%- for document in documents %}\n"
     "         {{- '<|start_of_role|>document {\"document_id\": \"' + document['doc_id'] | string + '\""
     "}<|end_of_role|>\n"
     "' }}\n"
     "         {{- document['text'] }}\n"
     "         {{- '<|end_of_text|>\n"
     "' }}\n"
     "              {%- endfor %}\n"
     " {%- endif %}\n"
     " "},
    {"EXAONE 3.5 7.8B (whole)", "exaone3",
     "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}{{ '[|system|][|"
     "endofturn|]\n"
     "' }}{% endif %}{{ '[|' + message['role'] + '|]' + message['content'] }}{% if message['role'] == "
     "'user' %}{{ '\n"
     "' }}{% else %}{{ '[|endofturn|]\n"
     "' }}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '[|assistant|]' }}{% endif %}"},
    {"EXAONE Deep 2.4B (whole)", NULL,
     "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}{{ '[|system|][|"
     "endofturn|]\\n' }}{% endif %}{% set content = message['content'] %}{% if '</thought>' in content"
     " %}{% set content = content.split('</thought>')[-1].lstrip('\\n') %}{% endif %}{{ '[|' + message"
     "['role'] + '|]' + content }}{% if not message['role'] == 'user' %}{{ '[|endofturn|]' }}{% endif "
     "%}{% if not loop.last %}{{ '\\n' }}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '\\n["
     "|assistant|]<thought>\\n' }}{% endif %}"},
    {"Falcon 2 11B (whole)", NULL,
     "{% for message in messages %}\n"
     "{% if message['role'] == 'user' %}\n"
     "{{ 'User: \n"
     "' + message['content'] }}\n"
     "{% elif message['role'] == 'system' %}\n"
     "{{ 'System: ' + message['content'] }}\n"
     "{% elif message['role'] == 'assistant' %}\n"
     "{{ 'Falcon:\n"
     "'  + message['content']}}\n"
     "{% endif %}\n"
     "{% if loop.last and add_generation_prompt %}\n"
     "{{ 'Falcon:' }}\n"
     "{% endif %}\n"
     "{% endfor %}"},
    {"GLM-4 9B chat (excerpt, 563 of 2893 bytes)", NULL,
     "\n"
     "当你向 `python` 发送包含 Python 代码的消息时，该代码将会在一个有状态的 Jupyter notebook 环境中执行。\n"
     "`python` 返回代码执行的输出，或在执行 60 秒后返回超时。\n"
     "`/mnt/data` 将会持久化存储你的文件。在此会话中，`python` 无法访问互联网。不要使用 `python` 进行任何网络请求或者在线 API 调用，这些在线内容的访问将不会成功。"
     "{% elif tool['type'] == 'simple_browser' %}\n"
     "\n"
     "## simple_browser\n"
     "\n"
     "你可以使用 `simple_browser` 工具。该工具支持以下函数："},
    {"Granite Code 3B (whole)", NULL,
     "{% for message in messages %}\n"
     "{% if message['role'] == 'user' %}\n"
     "{{ 'Question:\n"
     "' + message['content'] + '\n"
     "\n"
     "' }}{% elif message['role'] == 'system' %}\n"
     "{{ 'System:\n"
     "' + message['content'] + '\n"
     "\n"
     "' }}{% elif message['role'] == 'assistant' %}{{ 'Answer:\n"
     "'  + message['content'] + '\n"
     "\n"
     "' }}{% endif %}\n"
     "{% if loop.last and add_generation_prompt %}\n"
     "{{ 'Answer:\n"
     "' }}{% endif %}{% endfor %}"},
    {"StarCoder2 15B instruct (whole)", NULL,
     "{{bos_token}}{{'You are an exceptionally intelligent coding assistant that consistently delivers"
     " accurate and reliable responses to user instructions.\n"
     "\n"
     "'}}\n"
     "{%- for message in messages %}\n"
     "    {%- if message['role'] == 'system' %}\n"
     "        {{ raise_exception('System messages are not allowed in this template.') }}\n"
     "    {%- else %}\n"
     "        {%- if message['role'] == 'user' %}\n"
     "{{'### Instruction\n"
     "' + message['content'] + '\n"
     "\n"
     "'}}\n"
     "        {%- else %}\n"
     "{{'### Response\n"
     "' + message['content'] + eos_token + '\n"
     "\n"
     "'}}\n"
     "        {%- endif %}\n"
     "    {%- endif %}\n"
     "{%- endfor %}\n"
     "{{'### Response\n"
     "'}}"},
    {"Granite 3.2 vision (excerpt, 302 of 1294 bytes)", NULL,
     "\n"
     "' }}\n"
     "{%- endif %}\n"
     "{%- for message in messages if message['role'] == 'system'%}{% else %}<|system|>\n"
     "A chat between a curious user and an artificial intelligence assistant. The assistant gives help"
     "ful, detailed, and polite answers to the user's questions.\n"
     "{% endfor %}{%- for message in messages %}\n"
     "    "},
};

/* ---------------------------------------------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------------------------------------------- */

/* Renders into a malloc'ed string (NULL on failure, the status in *status). */
static char *render(const char *format, const tnd_chat_message *messages, size_t n, int add_assistant,
                    const char *eos_text, tnd_status *status) {
    size_t needed = 0;
    tnd_status st = tnd_chat_template_apply(format, messages, n, add_assistant, eos_text, NULL, 0, &needed);
    if (st != TND_ERR_BUFFER_TOO_SMALL) {
        *status = st;
        return NULL;
    }
    char *text = malloc(needed + 1);
    if (!text) {
        *status = TND_ERR_OUT_OF_MEMORY;
        return NULL;
    }
    size_t again = 0;
    st = tnd_chat_template_apply(format, messages, n, add_assistant, eos_text, text, needed + 1, &again);
    *status = st;
    if (st || again != needed) {
        free(text);
        return NULL;
    }
    return text;
}

/* Checks that `format` renders the messages to exactly `expected`, printing both when not. */
static void check_render(const char *format, const tnd_chat_message *messages, size_t n, int add_assistant,
                         const char *eos_text, const char *expected, int line) {
    tnd_status st;
    char *got = render(format, messages, n, add_assistant, eos_text, &st);
    bool ok = got && strcmp(got, expected) == 0;
    if (!ok)
        fprintf(stderr, "line %d: format %s (status %s)\n  expected: [%s]\n  got:      [%s]\n", line, format,
                tnd_status_name(st), expected, got ? got : "(none)");
    CHECK(ok);
    free(got);
}

#define CHECK_RENDER(format, messages, add_assistant, eos_text, expected)                                           \
    check_render(format, messages, COUNT(messages), add_assistant, eos_text, expected, __LINE__)

/* ---------------------------------------------------------------------------------------------------------------
 * Tests
 * ------------------------------------------------------------------------------------------------------------- */

/* Every built-in format has an expected text, and renders the conversation to it. */
static void test_every_format(void) {
    size_t n = tnd_chat_template_count();
    CHECK(n == COUNT(renderings));
    for (size_t i = 0; i < n; i++) {
        const char *name = tnd_chat_template_name(i);
        size_t k = 0;
        while (k < COUNT(renderings) && strcmp(renderings[k].format, name) != 0) k++;
        if (!CHECK(k < COUNT(renderings))) {
            fprintf(stderr, "format %s has no expected rendering\n", name);
            continue;
        }
        check_render(name, conversation, COUNT(conversation), 1, NULL, renderings[k].expected, __LINE__);
    }
}

/* Without the assistant prompt the text ends after the last message; formats whose user turn ends with the cue
 * ([/INST]) are unchanged. */
static void test_no_assistant_prompt(void) {
    CHECK_RENDER("chatml", conversation, 0, NULL,
                 "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello!<|im_end|>\n"
                 "<|im_start|>assistant\n  Hi there.  <|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n");
    CHECK_RENDER("llama2", conversation, 0, NULL,
                 "[INST] <<SYS>>\nYou are a helpful assistant.\n<</SYS>>\n\nHello! [/INST] Hi there. </s>"
                 "<s>[INST] What is 2+2? [/INST]");
    /* no messages at all: the assistant prompt alone, or nothing */
    size_t needed = 99;
    char buf[64];
    CHECK_OK(tnd_chat_template_apply("gemma", NULL, 0, 1, NULL, buf, sizeof buf, &needed));
    CHECK(strcmp(buf, "<start_of_turn>model\n") == 0 && needed == strlen(buf));
    CHECK_OK(tnd_chat_template_apply("mistral-v7", NULL, 0, 1, NULL, buf, sizeof buf, &needed));
    CHECK(needed == 0 && buf[0] == 0);
}

/* Names: unique, found by lookup in any case, with the other spellings; an unknown name lists them all. */
static void test_names(void) {
    size_t n = tnd_chat_template_count();
    CHECK(n >= 25);
    CHECK(tnd_chat_template_name(n) == NULL);
    for (size_t i = 0; i < n; i++) {
        const char *name = tnd_chat_template_name(i), *found = NULL;
        CHECK(name && name[0]);
        for (size_t j = 0; j < i; j++) CHECK(strcmp(name, tnd_chat_template_name(j)) != 0);
        CHECK_OK(tnd_chat_template_lookup(name, &found));
        CHECK(found == name);
    }
    static const struct {
        const char *given, *canonical;
    } spellings[] = {{"LLAMA3", "llama3"},   {"Llama-3", "llama3"}, {"qwen", "chatml"}, {"phi-3", "phi3"},
                     {"gemma3", "gemma"},    {"QwQ", "chatml-think"}, {"olmo2", "tulu"}, {"deepseek-v3", "deepseek3"}};
    for (size_t i = 0; i < COUNT(spellings); i++) {
        const char *found = NULL;
        CHECK_OK(tnd_chat_template_lookup(spellings[i].given, &found));
        CHECK(found && strcmp(found, spellings[i].canonical) == 0);
    }
    const char *found = (const char *)1;
    CHECK(tnd_chat_template_lookup("llama5", &found) == TND_ERR_NOT_FOUND);
    CHECK(found == NULL);
    const char *msg = tnd_last_error();
    CHECK(strstr(msg, "llama5") != NULL);
    for (size_t i = 0; i < n; i++) CHECK(strstr(msg, tnd_chat_template_name(i)) != NULL);
    size_t needed = 7;
    CHECK(tnd_chat_template_apply("llama5", conversation, COUNT(conversation), 1, NULL, NULL, 0, &needed) ==
          TND_ERR_NOT_FOUND);
    CHECK(tnd_chat_template_lookup(NULL, &found) == TND_ERR_INVALID_ARGUMENT);
}

/* Real templates are recognised as their family; unsupported ones are refused with the list of names. */
static void test_real_templates(void) {
    size_t recognised = 0, refused = 0;
    for (size_t i = 0; i < COUNT(real_templates); i++) {
        const char *name = NULL;
        tnd_status st = tnd_chat_template_detect(real_templates[i].jinja, strlen(real_templates[i].jinja), &name);
        bool ok;
        if (real_templates[i].format) {
            ok = st == TND_OK && name && strcmp(name, real_templates[i].format) == 0;
            recognised += ok;
        } else {
            ok = st == TND_ERR_UNSUPPORTED && name == NULL;
            for (size_t k = 0; ok && k < tnd_chat_template_count(); k++)
                ok = strstr(tnd_last_error(), tnd_chat_template_name(k)) != NULL;
            refused += ok;
        }
        if (!CHECK(ok))
            fprintf(stderr, "%s: expected %s, got %s (%s)\n", real_templates[i].model,
                    real_templates[i].format ? real_templates[i].format : "unsupported", name ? name : "none",
                    tnd_status_name(st));
    }
    printf("real templates: %zu recognised, %zu refused, of %zu\n", recognised, refused, COUNT(real_templates));

    /* empty and missing templates */
    const char *name = NULL;
    CHECK(tnd_chat_template_detect("", 0, &name) == TND_ERR_UNSUPPORTED);
    CHECK(tnd_chat_template_detect(NULL, 0, &name) == TND_ERR_UNSUPPORTED);
    CHECK(tnd_chat_template_detect(NULL, 5, &name) == TND_ERR_INVALID_ARGUMENT);
    CHECK(tnd_chat_template_detect("x", 1, NULL) == TND_ERR_INVALID_ARGUMENT);
}

/* Detection reads only `len` bytes: the input need not be NUL-terminated, and bytes past len do not count. */
static void test_detect_bounds(void) {
    static const char text[] = "{{ '<|im_start|>' + message['role'] }}";
    char *exact = malloc(sizeof text - 1); /* no terminating NUL */
    if (!CHECK(exact)) return;
    memcpy(exact, text, sizeof text - 1);
    const char *name = NULL;
    CHECK_OK(tnd_chat_template_detect(exact, sizeof text - 1, &name));
    CHECK(name && strcmp(name, "chatml") == 0);
    /* the marker ends one byte past len: not seen */
    CHECK(tnd_chat_template_detect(exact, (size_t)(strstr(text, "|>'") + 1 - text), &name) == TND_ERR_UNSUPPORTED);
    free(exact);
}

/* Stripping: Unicode whitespace as Jinja's trim; Llama 2 strips its whole first turn as one string; Gemma keeps the
 * folded system text as given; invalid UTF-8 and non-space characters at the edges stay. */
static void test_whitespace(void) {
    static const tnd_chat_message unicode[] = {
        {"user", "\xE3\x80\x80\xC2\xA0 \t\xE2\x80\x83Hello\xE2\x80\xA8\n\x1F"},  /* U+3000 U+00A0 U+2003 / U+2028 */
        {"assistant", "\xC3\xA9t\xC3\xA9\xE2\x80\x8B"},                           /* U+200B is not whitespace */
        {"user", "\xFF ok \xFF"},
    };
    CHECK_RENDER("llama3", unicode, 0, NULL,
                 "<|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>"
                 "<|start_header_id|>assistant<|end_header_id|>\n\n\xC3\xA9t\xC3\xA9\xE2\x80\x8B<|eot_id|>"
                 "<|start_header_id|>user<|end_header_id|>\n\n\xFF ok \xFF<|eot_id|>");

    static const tnd_chat_message padded[] = {{"system", "  Be brief.  "}, {"user", "  Hi  "}};
    CHECK_RENDER("llama2", padded, 1, NULL, "[INST] <<SYS>>\n  Be brief.  \n<</SYS>>\n\n  Hi [/INST]");
    CHECK_RENDER("gemma", padded, 1, NULL, "<start_of_turn>user\n  Be brief.  \n\nHi<end_of_turn>\n"
                                           "<start_of_turn>model\n");
    /* Llama 2: an empty user text lets the strip reach into the <<SYS>> block's trailing newlines */
    static const tnd_chat_message blank_user[] = {{"system", "Be brief."}, {"user", " \n "}};
    CHECK_RENDER("llama2", blank_user, 1, NULL, "[INST] <<SYS>>\nBe brief.\n<</SYS>> [/INST]");
    CHECK_RENDER("gemma", blank_user, 1, NULL, "<start_of_turn>user\nBe brief.\n\n<end_of_turn>\n"
                                               "<start_of_turn>model\n");
    static const tnd_chat_message all_space[] = {{"user", " \xE3\x80\x80 "}, {"assistant", "\n"}};
    CHECK_RENDER("command-r", all_space, 0, NULL,
                 "<|START_OF_TURN_TOKEN|><|USER_TOKEN|><|END_OF_TURN_TOKEN|>"
                 "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|><|END_OF_TURN_TOKEN|>");
}

/* Where system text goes: Mistral v3 into the last user turn, a lone system message as a user turn of its own, an
 * empty system turn for EXAONE, and system messages later in the conversation only where the template takes them. */
static void test_system_placement(void) {
    static const tnd_chat_message three_users[] = {
        {"system", "S"}, {"user", "a"}, {"assistant", "b"}, {"user", "c"}, {"assistant", "d"}, {"user", "e"}};
    CHECK_RENDER("mistral-v3", three_users, 1, NULL, "[INST] a[/INST] b</s>[INST] c[/INST] d</s>[INST] S\n\ne[/INST]");
    CHECK_RENDER("mistral-v1", three_users, 1, NULL,
                 " [INST] S\n\na [/INST] b</s> [INST] c [/INST] d</s> [INST] e [/INST]");

    static const tnd_chat_message only_system[] = {{"system", "S"}};
    CHECK_RENDER("llama2", only_system, 1, NULL, "[INST] <<SYS>>\nS\n<</SYS>> [/INST]");
    CHECK_RENDER("gemma", only_system, 1, NULL, "<start_of_turn>user\nS\n\n<end_of_turn>\n<start_of_turn>model\n");
    CHECK_RENDER("chatml", only_system, 0, NULL, "<|im_start|>system\nS<|im_end|>\n");

    static const tnd_chat_message no_system[] = {{"user", "Hi"}};
    CHECK_RENDER("exaone3", no_system, 1, NULL, "[|system|][|endofturn|]\n[|user|]Hi\n[|assistant|]");
    CHECK_RENDER("llama2", no_system, 1, NULL, "[INST] Hi [/INST]");

    static const tnd_chat_message late_system[] = {{"user", "a"}, {"system", "S"}, {"user", "b"}};
    CHECK_RENDER("chatml", late_system, 0, NULL,
                 "<|im_start|>user\na<|im_end|>\n<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nb<|im_end|>\n");
    static const char *const first_only[] = {"llama2", "gemma", "mistral-v3", "deepseek3", "command-r", "llama4"};
    for (size_t i = 0; i < COUNT(first_only); i++) {
        size_t needed = 5;
        CHECK(tnd_chat_template_apply(first_only[i], late_system, COUNT(late_system), 1, NULL, NULL, 0, &needed) ==
              TND_ERR_INVALID_ARGUMENT);
        CHECK(strstr(tnd_last_error(), "message 1") && strstr(tnd_last_error(), first_only[i]));
        CHECK(needed == 0);
    }
}

/* Reasoning before "</think>" is dropped from replies as each template does: after the last marker, after the first
 * one, or (Qwen3) after the last one and its following newlines, and for Qwen3 only before the last user message. */
static void test_reasoning(void) {
    static const tnd_chat_message reply[] = {
        {"user", "Hi"}, {"assistant", "<think>\nplan\n</think>\n\nHello</think> there"}, {"user", "Bye"}};
    CHECK_RENDER("deepseek-r1", reply, 1, NULL,
                 DS_USER "Hi" DS_ASSISTANT " there" DS_EOS DS_USER "Bye" DS_ASSISTANT "<think>\n");
    CHECK_RENDER("deepseek-v3.1", reply, 1, NULL,
                 DS_USER "Hi" DS_ASSISTANT "</think>\n\nHello</think> there" DS_EOS
                 DS_USER "Bye" DS_ASSISTANT "</think>");
    static const tnd_chat_message newline_reply[] = {
        {"user", "Hi"}, {"assistant", "<think>x</think>\n\n\nHello"}, {"user", "Bye"}};
    CHECK_RENDER("qwen3", newline_reply, 1, NULL,
                 "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello<|im_end|>\n"
                 "<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n");
    CHECK_RENDER("chatml", newline_reply, 0, NULL,
                 "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>x</think>\n\n\nHello<|im_end|>\n"
                 "<|im_start|>user\nBye<|im_end|>\n");
    static const tnd_chat_message last_reply[] = {{"user", "Hi"}, {"assistant", "<think>x</think>\nHe"}};
    CHECK_RENDER("deepseek-r1", last_reply, 0, NULL, DS_USER "Hi" DS_ASSISTANT "\nHe" DS_EOS);
    /* (Qwen3's template re-wraps the kept reasoning as "<think>\nx\n</think>\n\n"; tandem keeps the reply as given) */
    CHECK_RENDER("qwen3", last_reply, 0, NULL,
                 "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>x</think>\nHe<|im_end|>\n");
}

/* The caller's EOS text replaces the template's eos_token; table text and contents are not otherwise touched. */
static void test_eos_text(void) {
    static const tnd_chat_message turns[] = {{"user", "Hi {eos}"}, {"assistant", "Yo"}, {"user", "Bye"}};
    CHECK_RENDER("zephyr", turns, 1, "<|endoftext|>",
                 "<|user|>\nHi {eos}<|endoftext|>\n<|assistant|>\nYo<|endoftext|>\n<|user|>\nBye<|endoftext|>\n"
                 "<|assistant|>\n");
    CHECK_RENDER("tulu", turns, 1, "<|end_of_text|>",
                 "<|user|>\nHi {eos}\n<|assistant|>\nYo<|end_of_text|>\n<|user|>\nBye\n<|assistant|>\n");
    CHECK_RENDER("llama2", turns, 1, "<EOS>", "[INST] Hi {eos} [/INST] Yo <EOS><s>[INST] Bye [/INST]");
    CHECK_RENDER("chatml", turns, 1, "<EOS>",
                 "<|im_start|>user\nHi {eos}<|im_end|>\n<|im_start|>assistant\nYo<|im_end|>\n"
                 "<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n");
}

/* A tool result: llama3's ipython turn; elsewhere a user turn holding <tool_response> (Qwen 2.5 / 3, Hermes). */
static void test_tool_turns(void) {
    static const tnd_chat_message turns[] = {
        {"user", "Weather?"}, {"assistant", "{\"name\": \"w\", \"parameters\": {}}"}, {"tool", "{\"t\": 21}"}};
    CHECK_RENDER("llama3", turns, 1, NULL,
                 "<|start_header_id|>user<|end_header_id|>\n\nWeather?<|eot_id|>"
                 "<|start_header_id|>assistant<|end_header_id|>\n\n{\"name\": \"w\", \"parameters\": {}}<|eot_id|>"
                 "<|start_header_id|>ipython<|end_header_id|>\n\n{\"t\": 21}<|eot_id|>"
                 "<|start_header_id|>assistant<|end_header_id|>\n\n");
    CHECK_RENDER("chatml", turns, 1, NULL,
                 "<|im_start|>user\nWeather?<|im_end|>\n<|im_start|>assistant\n{\"name\": \"w\", \"parameters\": {}}"
                 "<|im_end|>\n<|im_start|>user\n<tool_response>\n{\"t\": 21}\n</tool_response><|im_end|>\n"
                 "<|im_start|>assistant\n");
    /* mistral-v3: the definitions before the last user turn, results in [TOOL_RESULTS] */
    static const tnd_chat_message mistral[] = {
        {"tools", "[{\"type\": \"function\", \"function\": {\"name\": \"w\"}}]"},
        {"user", "Weather?"},
        {"assistant", "[TOOL_CALLS] [{\"name\": \"w\", \"arguments\": {}}]"},
        {"tool", "{\"t\": 21}"},
        {"user", "Thanks"}};
    CHECK_RENDER("mistral-v3", mistral, 1, NULL,
                 "[INST] Weather?[/INST] [TOOL_CALLS] [{\"name\": \"w\", \"arguments\": {}}]</s>"
                 "[TOOL_RESULTS] {\"content\": {\"t\": 21}}[/TOOL_RESULTS]"
                 "[AVAILABLE_TOOLS] [{\"type\": \"function\", \"function\": {\"name\": \"w\"}}][/AVAILABLE_TOOLS]"
                 "[INST] Thanks[/INST]");
    size_t needed = 0;
    CHECK(tnd_chat_template_apply("chatml", mistral, 5, 1, NULL, NULL, 0, &needed) == TND_ERR_INVALID_ARGUMENT &&
          strstr(tnd_last_error(), "no place for them"));
}

/* Bad messages fail with a message naming the problem, and write nothing. */
static void test_bad_input(void) {
    size_t needed = 5;
    static const tnd_chat_message function[] = {{"user", "a"}, {"function", "{}"}};
    CHECK(tnd_chat_template_apply("chatml", function, 2, 1, NULL, NULL, 0, &needed) == TND_ERR_INVALID_ARGUMENT);
    CHECK(strstr(tnd_last_error(), "'function'") && strstr(tnd_last_error(), "message 1"));
    static const tnd_chat_message upper[] = {{"User", "a"}};
    CHECK(tnd_chat_template_apply("chatml", upper, 1, 1, NULL, NULL, 0, &needed) == TND_ERR_INVALID_ARGUMENT);
    static const tnd_chat_message null_content[] = {{"user", NULL}};
    CHECK(tnd_chat_template_apply("chatml", null_content, 1, 1, NULL, NULL, 0, &needed) == TND_ERR_INVALID_ARGUMENT);
    static const tnd_chat_message null_role[] = {{NULL, "a"}};
    CHECK(tnd_chat_template_apply("chatml", null_role, 1, 1, NULL, NULL, 0, &needed) == TND_ERR_INVALID_ARGUMENT);
    CHECK(needed == 0);
    char buf[8] = "xxxxxxx";
    CHECK(tnd_chat_template_apply(NULL, conversation, 1, 1, NULL, buf, sizeof buf, &needed) ==
          TND_ERR_INVALID_ARGUMENT);
    CHECK(tnd_chat_template_apply("chatml", NULL, 1, 1, NULL, buf, sizeof buf, &needed) == TND_ERR_INVALID_ARGUMENT);
    CHECK(tnd_chat_template_apply("chatml", conversation, 1, 1, NULL, NULL, 8, &needed) == TND_ERR_INVALID_ARGUMENT);
    CHECK(tnd_chat_template_apply("chatml", conversation, 1, 1, NULL, buf, sizeof buf, NULL) ==
          TND_ERR_INVALID_ARGUMENT);
    CHECK(strcmp(buf, "xxxxxxx") == 0);
}

/* *needed is the length without the NUL; the buffer needs one more byte; a short buffer gets the NUL-terminated
 * beginning. */
static void test_buffer_convention(void) {
    static const tnd_chat_message hi[] = {{"user", "Hi"}};
    static const char full[] = "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n";
    const size_t len = sizeof full - 1;
    size_t needed = 0;
    CHECK(tnd_chat_template_apply("chatml", hi, 1, 1, NULL, NULL, 0, &needed) == TND_ERR_BUFFER_TOO_SMALL);
    CHECK(needed == len);
    char buf[128];
    memset(buf, '#', sizeof buf);
    needed = 0;
    CHECK_OK(tnd_chat_template_apply("chatml", hi, 1, 1, NULL, buf, len + 1, &needed));
    CHECK(needed == len && memcmp(buf, full, len + 1) == 0 && buf[len + 1] == '#');
    memset(buf, '#', sizeof buf);
    needed = 0;
    CHECK(tnd_chat_template_apply("chatml", hi, 1, 1, NULL, buf, len, &needed) == TND_ERR_BUFFER_TOO_SMALL);
    CHECK(needed == len && memcmp(buf, full, len - 1) == 0 && buf[len - 1] == 0 && buf[len] == '#');
    memset(buf, '#', sizeof buf);
    CHECK(tnd_chat_template_apply("chatml", hi, 1, 1, NULL, buf, 1, &needed) == TND_ERR_BUFFER_TOO_SMALL);
    CHECK(needed == len && buf[0] == 0 && buf[1] == '#');
    memset(buf, '#', sizeof buf);
    CHECK(tnd_chat_template_apply("chatml", hi, 1, 1, NULL, buf, 20, &needed) == TND_ERR_BUFFER_TOO_SMALL);
    CHECK(memcmp(buf, full, 19) == 0 && buf[19] == 0 && buf[20] == '#');
    CHECK_OK(tnd_chat_template_apply("chatml", hi, 1, 1, NULL, buf, sizeof buf, &needed));
    CHECK(needed == len && strcmp(buf, full) == 0);
}

/* A long conversation (more messages than the renderer keeps on its stack) renders turn by turn. */
static void test_long_conversation(void) {
    enum { N = 301 };
    static tnd_chat_message messages[N];
    static char contents[N][16];
    char *expected = malloc((size_t)N * 64);
    if (!CHECK(expected)) return;
    size_t len = 0;
    for (int i = 0; i < N; i++) {
        snprintf(contents[i], sizeof contents[i], "m%d", i);
        messages[i].role = i % 2 ? "assistant" : "user";
        messages[i].content = contents[i];
        len += (size_t)sprintf(expected + len, "<|im_start|>%s\n%s<|im_end|>\n", messages[i].role, contents[i]);
    }
    strcpy(expected + len, "<|im_start|>assistant\n");
    check_render("chatml", messages, N, 1, NULL, expected, __LINE__);
    free(expected);
}

/* tnd_model_chat_template reads tokenizer.chat_template of an open model. */
static tnd_status write_model(const char *path, const char *template_key, const char *jinja) {
    tnd_gguf_writer *w = tnd_gguf_writer_init(NULL);
    if (!w) return TND_ERR_OUT_OF_MEMORY;
    tnd_status st = tnd_gguf_writer_set_str(w, "general.architecture", "llama");
    if (!st && template_key) st = tnd_gguf_writer_set_str(w, template_key, jinja);
    if (!st && !template_key) st = tnd_gguf_writer_set_u32(w, "tokenizer.chat_template", 7);
    if (!st) st = tnd_gguf_writer_write_file(w, path);
    tnd_gguf_writer_free(w);
    return st;
}

static void test_model_template(void) {
    static const char path[] = "test_chat_template.gguf";
    static const struct {
        const char *key, *jinja;
        tnd_status status;
        const char *format;
    } cases[] = {
        {"tokenizer.chat_template", "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
                                    "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}",
         TND_OK, "chatml"},
        {"tokenizer.chat_template", "{{ messages }}", TND_ERR_UNSUPPORTED, NULL},
        {"general.name", "no template", TND_ERR_NOT_FOUND, NULL},
        {NULL, NULL, TND_ERR_TYPE, NULL}, /* a number instead of a string */
    };
    for (size_t i = 0; i < COUNT(cases); i++) {
        if (!CHECK_OK(write_model(path, cases[i].key, cases[i].jinja))) continue;
        tnd_model *model = NULL;
        if (CHECK_OK(tnd_model_open(path, NULL, &model))) {
            const char *name = (const char *)1;
            CHECK(tnd_model_chat_template(model, &name) == cases[i].status);
            if (cases[i].format) CHECK(name && strcmp(name, cases[i].format) == 0);
            else CHECK(name == NULL);
            if (cases[i].status == TND_ERR_NOT_FOUND) CHECK(strstr(tnd_last_error(), "chatml") != NULL);
        }
        tnd_model_close(model);
    }
    remove(path);
    const char *name = NULL;
    CHECK(tnd_model_chat_template(NULL, &name) == TND_ERR_INVALID_ARGUMENT);
}

/* ---------------------------------------------------------------------------------------------------------------
 * Message contents cannot forge control tokens
 * ------------------------------------------------------------------------------------------------------------- */

/* Encodes the conversation; the number of control (or unknown) tokens in it, or -1 on an error. */
static int control_tokens(const tnd_tokenizer *tok, const char *format, const tnd_chat_message *msgs, size_t n,
                          uint32_t flags, int32_t **out, int32_t *n_out) {
    int32_t count = tnd_chat_encode(tok, format, msgs, n, 1, NULL, flags, NULL, 0);
    if (count == TND_TOKENIZE_ERROR) return -1;
    count = count < 0 ? -count : count;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)count + 1);
    if (!ids || tnd_chat_encode(tok, format, msgs, n, 1, NULL, flags, ids, count) != count) {
        free(ids);
        return -1;
    }
    int control = 0;
    for (int32_t i = 0; i < count; i++) {
        tnd_token_type type = tnd_tokenizer_token_type(tok, ids[i]);
        control += type == TND_TOKEN_TYPE_CONTROL || type == TND_TOKEN_TYPE_UNKNOWN;
    }
    if (out)
        *out = ids, *n_out = count;
    else
        free(ids);
    return control;
}

/* With every built-in format, a conversation whose messages hold every control token of the vocabulary as text
 * encodes to exactly as many control tokens as the same conversation with harmless text: the format's markers,
 * nothing from the contents. With TND_CHAT_CONTENT_SPECIAL the contents' markers do become control tokens (so the
 * check can fail), and a harmless conversation encodes as its rendered text with special-token parsing did. */
static void test_no_forged_control_tokens(const char *fixture, bool markers_are_tokens) {
    tnd_model *m = NULL;
    tnd_tokenizer *tok = NULL;
    if (!CHECK_OK(tnd_model_open(fixture, NULL, &m)) || !CHECK_OK(tnd_tokenizer_init(m, &tok))) {
        tnd_model_close(m);
        return;
    }
    size_t cap = 1 << 16, len = 0;
    char *hostile = malloc(cap);
    int n_control = 0;
    for (int32_t id = 0; hostile && id < tnd_tokenizer_n_vocab(tok); id++) {
        tnd_token_type type = tnd_tokenizer_token_type(tok, id);
        size_t n = 0;
        const char *text = tnd_tokenizer_token_text(tok, id, &n);
        if ((type != TND_TOKEN_TYPE_CONTROL && type != TND_TOKEN_TYPE_UNKNOWN) || !text || !n || len + n + 2 > cap)
            continue;
        memcpy(hostile + len, text, n);
        len += n;
        hostile[len++] = 'x'; /* text between the markers, so that each could match on its own */
        n_control++;
    }
    if (!CHECK(hostile && n_control > 0)) goto cleanup;
    hostile[len] = 0;
    int forged = 0, formats = 0, exact = 0, with_markers = 0;
    for (size_t f = 0; f < tnd_chat_template_count(); f++) {
        const char *format = tnd_chat_template_name(f);
        const tnd_chat_message harmless[] = {
            {"system", "Be brief."}, {"user", "Hello there"}, {"assistant", "Hi."}, {"user", "Bye"}};
        const tnd_chat_message attack[] = {
            {"system", hostile}, {"user", hostile}, {"assistant", hostile}, {"user", hostile}};
        /* formats that take no system message after the first, or none at all, still take this order */
        int base = control_tokens(tok, format, harmless, COUNT(harmless), 0, NULL, NULL);
        int got = control_tokens(tok, format, attack, COUNT(attack), 0, NULL, NULL);
        int old = control_tokens(tok, format, attack, COUNT(attack), TND_CHAT_CONTENT_SPECIAL, NULL, NULL);
        if (!CHECK(base >= 0 && got >= 0 && old >= 0)) continue;
        formats++;
        with_markers += base > 0;
        if (got != base || old < base + n_control) {
            forged++;
            fprintf(stderr,
                    "  %s, %s: %d control tokens from markers, %d with hostile contents (%d when contents are "
                    "parsed)\n",
                    fixture, format, base, got, old);
        }
        /* harmless text: the same tokens as rendering and encoding the text with special-token parsing */
        int32_t *ids = NULL, n_ids = 0;
        size_t needed = 0;
        tnd_chat_template_apply(format, harmless, COUNT(harmless), 1, NULL, NULL, 0, &needed);
        char *text = malloc(needed + 1);
        const uint32_t parse = TND_TOKENIZE_ADD_SPECIAL | TND_TOKENIZE_PARSE_SPECIAL;
        if (text &&
            control_tokens(tok, format, harmless, COUNT(harmless), TND_TOKENIZE_ADD_SPECIAL, &ids, &n_ids) >= 0 &&
            tnd_chat_template_apply(format, harmless, COUNT(harmless), 1, NULL, text, needed + 1, &needed) == TND_OK) {
            int32_t *plain = malloc(sizeof(int32_t) * (size_t)n_ids + 1);
            exact += plain && tnd_tokenizer_encode(tok, text, needed, parse, plain, n_ids) == n_ids &&
                     !memcmp(plain, ids, sizeof(int32_t) * (size_t)n_ids);
            free(plain);
        }
        free(ids);
        free(text);
    }
    CHECK(formats == (int)tnd_chat_template_count() && forged == 0 && exact == formats);
    /* with the markers in the vocabulary, every format but the plain-text ones writes control tokens of its own */
    if (markers_are_tokens) CHECK(with_markers >= formats - 4);
    printf("  %s: %d control tokens in every message of %d formats (%d with control-token markers): none forged; "
           "harmless text encodes as before in %d\n",
           fixture, n_control, formats, with_markers, exact);
cleanup:
    free(hostile);
    tnd_tokenizer_free(tok);
    tnd_model_close(m);
}

/* The markers of the built-in formats (and other well-known control tokens) as control tokens of a small
 * SentencePiece-style vocabulary with byte fallback, so that every format's own markers are real control tokens. */
static const char *const chat_markers[] = {"<|im_start|>",
                                           "<|im_end|>",
                                           "<|im_sep|>",
                                           "<|start_header_id|>",
                                           "<|end_header_id|>",
                                           "<|eot_id|>",
                                           "<|begin_of_text|>",
                                           "<|header_start|>",
                                           "<|header_end|>",
                                           "<|eot|>",
                                           "[INST]",
                                           "[/INST]",
                                           "[SYSTEM_PROMPT]",
                                           "[/SYSTEM_PROMPT]",
                                           "<start_of_turn>",
                                           "<end_of_turn>",
                                           "<|user|>",
                                           "<|assistant|>",
                                           "<|system|>",
                                           "<|end|>",
                                           "<|endoftext|>",
                                           "<\xef\xbd\x9c"
                                           "User\xef\xbd\x9c>",
                                           "<\xef\xbd\x9c"
                                           "Assistant\xef\xbd\x9c>",
                                           "<\xef\xbd\x9c"
                                           "end\xe2\x96\x81"
                                           "of\xe2\x96\x81"
                                           "sentence\xef\xbd\x9c>",
                                           "<|START_OF_TURN_TOKEN|>",
                                           "<|END_OF_TURN_TOKEN|>",
                                           "<|USER_TOKEN|>",
                                           "<|CHATBOT_TOKEN|>",
                                           "<|SYSTEM_TOKEN|>",
                                           "<|assistant|>\n"};

static tnd_status write_marker_vocab(const char *path) {
    enum { N_BYTES = 256, N_MARKERS = COUNT(chat_markers), N = 3 + N_BYTES + N_MARKERS };
    static char bytes[N_BYTES][8];
    const char *tokens[N];
    float scores[N];
    int32_t types[N];
    tokens[0] = "<unk>", tokens[1] = "<s>", tokens[2] = "</s>";
    types[0] = 2, types[1] = types[2] = 3; /* unknown, control */
    for (int b = 0; b < N_BYTES; b++) {
        snprintf(bytes[b], sizeof bytes[b], "<0x%02X>", b);
        tokens[3 + b] = bytes[b];
        types[3 + b] = 6; /* byte */
    }
    for (int i = 0; i < N_MARKERS; i++) tokens[3 + N_BYTES + i] = chat_markers[i], types[3 + N_BYTES + i] = 3;
    for (int i = 0; i < N; i++) scores[i] = 0;
    tnd_gguf_writer *w = tnd_gguf_writer_init(NULL);
    if (!w) return TND_ERR_OUT_OF_MEMORY;
    tnd_status st = tnd_gguf_writer_set_str(w, "general.architecture", "llama");
    if (!st) st = tnd_gguf_writer_set_str(w, "tokenizer.ggml.model", "llama");
    if (!st) st = tnd_gguf_writer_set_array_str(w, "tokenizer.ggml.tokens", tokens, NULL, N);
    if (!st) st = tnd_gguf_writer_set_array(w, "tokenizer.ggml.scores", TND_VALUE_F32, scores, N);
    if (!st) st = tnd_gguf_writer_set_array(w, "tokenizer.ggml.token_type", TND_VALUE_I32, types, N);
    if (!st) st = tnd_gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", 0);
    if (!st) st = tnd_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1);
    if (!st) st = tnd_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 2);
    if (!st) st = tnd_gguf_writer_write_file(w, path);
    tnd_gguf_writer_free(w);
    return st;
}

/* Marked encoding at the edge of the format's text: "<|assistant|>" and "<|assistant|>\n" are both control tokens of
 * the marker vocabulary; the longer one is taken only where all of it was written by the format. */
static void test_marked_edges(const char *vocab) {
    tnd_model *m = NULL;
    tnd_tokenizer *tok = NULL;
    if (!CHECK_OK(tnd_model_open(vocab, NULL, &m)) || !CHECK_OK(tnd_tokenizer_init(m, &tok))) {
        tnd_model_close(m);
        return;
    }
    static const char text[] = "<|assistant|>\nhi";
    const size_t len = sizeof text - 1, marker = strlen("<|assistant|>");
    int32_t short_id = tnd_tokenizer_find(tok, "<|assistant|>", marker);
    int32_t long_id = tnd_tokenizer_find(tok, "<|assistant|>\n", marker + 1);
    uint8_t marks[sizeof text] = {0};
    int32_t ids[64];
    for (int marked = 0; marked <= 2; marked++) { /* nothing, the short marker, the long one */
        memset(marks, 0, sizeof marks);
        size_t n_marked = marked == 0 ? 0 : marked == 1 ? marker : marker + 1;
        memset(marks, 1, n_marked);
        int32_t n = tnd_tokenizer_encode_marked(tok, text, len, marks, TND_TOKENIZE_PARSE_SPECIAL, ids, 64);
        int want = marked == 0 ? -1 : marked == 1 ? short_id : long_id;
        bool has_control = false;
        for (int32_t i = 0; i < n; i++) has_control |= ids[i] == short_id || ids[i] == long_id;
        CHECK(n > 0 && short_id >= 0 && long_id >= 0 && (want < 0 ? !has_control : ids[0] == want));
    }
    tnd_tokenizer_free(tok);
    tnd_model_close(m);
}

int main(void) {
    static const char marker_vocab[] = "test_chat_template_vocab.gguf";
    if (CHECK_OK(write_marker_vocab(marker_vocab))) {
        test_no_forged_control_tokens(marker_vocab, true);
        test_marked_edges(marker_vocab);
    }
    remove(marker_vocab);
    test_no_forged_control_tokens(tnd_fixture("models/qwen2-tiny-q8_0.gguf"), false);
    test_no_forged_control_tokens(tnd_fixture("models/llama3-tiny-q8_0.gguf"), false);
    test_no_forged_control_tokens(tnd_fixture("vocab/ggml-vocab-llama-spm.gguf"), false);
    test_no_forged_control_tokens(tnd_fixture("vocab/ggml-vocab-deepseek-llm.gguf"), false);
    test_every_format();
    test_no_assistant_prompt();
    test_names();
    test_real_templates();
    test_detect_bounds();
    test_whitespace();
    test_system_placement();
    test_reasoning();
    test_eos_text();
    test_tool_turns();
    test_bad_input();
    test_buffer_convention();
    test_long_conversation();
    test_model_template();
    return tnd_test_finish("test_chat_template");
}

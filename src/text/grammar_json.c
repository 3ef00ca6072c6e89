/* grammar_json.c: the grammar of JSON text (RFC 8259) with an object at the top. Whitespace between tokens is one
 * space, or a line break and indentation, so that a model cannot fill its budget with blanks while staying inside
 * the grammar. */
#include "tandem.h"

static const char json_grammar[] =
    "root   ::= ws object ws\n"
    "value  ::= object | array | string | number | \"true\" | \"false\" | \"null\"\n"
    "object ::= \"{\" ws ( member ( ws \",\" ws member )* ws )? \"}\"\n"
    "member ::= string ws \":\" ws value\n"
    "array  ::= \"[\" ws ( value ( ws \",\" ws value )* ws )? \"]\"\n"
    "string ::= \"\\\"\" ( [^\"\\\\\\x00-\\x1f] | \"\\\\\" ( [\"\\\\/bfnrt] | \"u\" [0-9a-fA-F]{4} ) )* \"\\\"\"\n"
    "number ::= \"-\"? ( \"0\" | [1-9] [0-9]{0,15} ) ( \".\" [0-9]{1,16} )? ( [eE] [-+]? [0-9]{1,3} )?\n"
    "ws     ::= ( \" \" | \"\\n\" [ \\t]{0,20} )?\n";

const char *tnd_grammar_json_text(void) { return json_grammar; }

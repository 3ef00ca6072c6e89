/* json_schema.h: JSON Schema as GBNF rules, for callers that wrap the JSON in more grammar (the server's tool calls);
 * tnd_grammar_from_json_schema (tandem.h) compiles a schema on its own. */
#ifndef TND_TEXT_JSON_SCHEMA_H
#define TND_TEXT_JSON_SCHEMA_H

#include "tandem.h"

/* GBNF rules in which rule `name` is the JSON text that validates against the schema (no whitespace around it),
 * with the rules it needs (names s<N>, r<N>, j-<...>), into *out (NUL-terminated; release with tnd_free(NULL, ...)).
 * Errors as tnd_grammar_from_json_schema's. */
tnd_status tnd_json_schema_gbnf(const char *schema, size_t len, const char *name, char **out);

#endif

// JSON Schema to GBNF through llama.cpp's own converter
// (common/json-schema-to-grammar.cpp), behind a C++ exception barrier.
#pragma once
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

// Converts the JSON Schema in schema[0:len] to a GBNF grammar whose start
// rule is "root". It returns the grammar, allocated with malloc, or NULL
// with a malloc'ed message in *err (NULL too if even that allocation
// failed). No C++ exception escapes.
char * llamago_json_schema_to_grammar(const char * schema, size_t len, char ** err);

#ifdef __cplusplus
}
#endif

#include "jsonschema.h"

#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>

#include <nlohmann/json.hpp>

#include "common/json-schema-to-grammar.h"

// The build information llama.cpp's CMake build generates (build-info.cpp),
// which common.cpp refers to; ollama's llama package, which we do not
// import, defines it the same way. The commit is that of the llama.cpp
// sources in the pinned github.com/ollama/ollama module.
int LLAMA_BUILD_NUMBER = 0;
char const * LLAMA_COMMIT = "ec98e2002";
char const * LLAMA_COMPILER = "";
char const * LLAMA_BUILD_TARGET = "";

static char * llamago_strdup(const std::string & s) {
    char * p = (char *) malloc(s.size() + 1);
    if (p != nullptr) {
        memcpy(p, s.c_str(), s.size() + 1);
    }
    return p;
}

extern "C" char * llamago_json_schema_to_grammar(const char * schema, size_t len, char ** err) {
    *err = nullptr;
    try {
        // ordered_json keeps the properties in the schema's order, which is
        // the order the grammar makes the model write them in.
        nlohmann::ordered_json j = nlohmann::ordered_json::parse(schema, schema + len);
        // The converter resolves no reference inside a node that is itself
        // a reference, so a root {"$ref": ..., "$defs": {...}} leaves the
        // references of its definitions unresolved, and the grammar allows
        // any object for them. As a one-way union the root means the same
        // (a reference takes precedence over anyOf and oneOf, as here),
        // and its definitions are searched for references.
        if (j.is_object() && j.contains("$ref") && j["$ref"].is_string()) {
            nlohmann::ordered_json ref = nlohmann::ordered_json::object();
            ref["$ref"] = j["$ref"];
            j.erase("$ref");
            j.erase("oneOf");
            j["anyOf"] = nlohmann::ordered_json::array({ ref });
        }
        char * g = llamago_strdup(json_schema_to_grammar(j));
        if (g == nullptr) {
            *err = llamago_strdup("out of memory");
        }
        return g;
    } catch (const std::exception & e) {
        *err = llamago_strdup(e.what());
    } catch (...) {
        *err = llamago_strdup("unknown C++ exception");
    }
    return nullptr;
}

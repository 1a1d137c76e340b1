#include "shim.h"

#include <cmath>
#include <cstdio>
#include <exception>

#ifndef LLAMAGO_SYSTEM
#include "src/llama-grammar.h"
#endif

extern "C" {

// Defined in Go (callbacks.go).
void goLog(int level, char * text);
bool goProgress(float progress, uintptr_t handle);

void llamago_log(enum ggml_log_level level, const char * text, void * /*user_data*/) {
    goLog((int) level, (char *) text);
}

bool llamago_progress(float progress, void * user_data) {
    return goProgress(progress, (uintptr_t) user_data);
}

bool llamago_abort(void * user_data) {
    return __atomic_load_n((int32_t *) user_data, __ATOMIC_RELAXED) != 0;
}

#ifndef LLAMAGO_SYSTEM
// Checks a grammar with llama.cpp's own parser, run step by step so that
// its error comes back to the caller: llama_grammar_parser::parse, which
// llama_sampler_init_grammar calls, prints it to stderr and says no more.
// The steps are those of parse (whitespace and comments, rules, rule
// references defined), and the start rule must exist. The parser is an
// internal type, so an installed llama.cpp (LLAMAGO_SYSTEM) skips this.
static bool grammar_check(const struct llama_vocab * vocab, const char * src, const char * root,
                          char * err, size_t err_len) {
    if (src == nullptr || *src == '\0') {
        return true; // no grammar
    }
    llama_grammar_parser parser(vocab);
    auto skip = [](const char * pos) {
        while (*pos == ' ' || *pos == '\t' || *pos == '\r' || *pos == '\n' || *pos == '#') {
            if (*pos == '#') {
                while (*pos && *pos != '\r' && *pos != '\n') {
                    pos++;
                }
            } else {
                pos++;
            }
        }
        return pos;
    };
    for (const char * pos = skip(src); *pos;) {
        pos = parser.parse_rule(pos); // throws on a syntax error
    }
    for (const auto & [name, id] : parser.symbol_ids) {
        if (id >= parser.rules.size() || parser.rules[id].empty()) {
            snprintf(err, err_len, "undefined rule %s", name.c_str());
            return false;
        }
    }
    if (parser.rules.empty()) {
        snprintf(err, err_len, "no rules");
        return false;
    }
    if (parser.symbol_ids.find(root) == parser.symbol_ids.end()) {
        snprintf(err, err_len, "no rule named %s to start from", root);
        return false;
    }
    return true;
}
#else
static bool grammar_check(const struct llama_vocab *, const char *, const char *, char *, size_t) {
    return true;
}
#endif

struct llama_sampler * llamago_sampler_init_grammar(
    const struct llama_vocab * vocab, const char * grammar, const char * root,
    bool lazy, const char ** patterns, size_t n_patterns,
    const llama_token * tokens, size_t n_tokens, char * err, size_t err_len) {
    try {
        if (!grammar_check(vocab, grammar, root, err, err_len)) {
            return nullptr;
        }
        struct llama_sampler * s;
        if (lazy) {
            s = llama_sampler_init_grammar_lazy_patterns(vocab, grammar, root, patterns, n_patterns, tokens, n_tokens);
        } else {
            s = llama_sampler_init_grammar(vocab, grammar, root);
        }
        if (s == nullptr) {
#ifndef LLAMAGO_SYSTEM
            // What grammar_check leaves to llama.cpp's set-up.
            snprintf(err, err_len, "left recursion: a rule can begin with itself");
#else
            snprintf(err, err_len, "llama.cpp rejected it (its log says why)");
#endif
        }
        return s;
    } catch (const std::exception & e) {
        snprintf(err, err_len, "%s", e.what());
    } catch (...) {
        snprintf(err, err_len, "unknown error");
    }
    return nullptr;
}

int32_t llamago_tokenize(const struct llama_vocab * vocab, const char * text, int32_t text_len,
                         llama_token * tokens, int32_t n_tokens_max, bool add_special, bool parse_special,
                         char * err, size_t err_len) {
    try {
        return llama_tokenize(vocab, text, text_len, tokens, n_tokens_max, add_special, parse_special);
    } catch (const std::exception & e) {
        snprintf(err, err_len, "%s", e.what());
    } catch (...) {
        snprintf(err, err_len, "unknown error");
    }
    return 0;
}

bool llamago_sampler_accept(struct llama_sampler * smpl, llama_token token) {
    try {
        llama_sampler_accept(smpl, token);
        return true;
    } catch (...) {
        return false;
    }
}

llama_token llamago_sampler_sample(struct llama_sampler * smpl, struct llama_context * ctx, int32_t idx) {
    try {
        return llama_sampler_sample(smpl, ctx, idx);
    } catch (...) {
        return -1;
    }
}

bool llamago_sampler_allows(struct llama_sampler * smpl, llama_token token) {
    llama_token_data d = { token, 0.0f, 0.0f };
    llama_token_data_array arr = { &d, 1, -1, false };
    try {
        llama_sampler_apply(smpl, &arr);
    } catch (...) {
        return false;
    }
    return arr.size == 1 && std::isfinite(arr.data[0].logit);
}

}

#include <cstring>

extern "C" void llamago_kv_override_set(struct llama_model_kv_override * o, const char * key, int kind,
                                        int64_t i, double f, bool b, const char * s) {
    snprintf(o->key, sizeof(o->key), "%s", key);
    switch (kind) {
    case 0: o->tag = LLAMA_KV_OVERRIDE_TYPE_INT;   o->val_i64 = i; break;
    case 1: o->tag = LLAMA_KV_OVERRIDE_TYPE_FLOAT; o->val_f64 = f; break;
    case 2: o->tag = LLAMA_KV_OVERRIDE_TYPE_BOOL;  o->val_bool = b; break;
    default:
        o->tag = LLAMA_KV_OVERRIDE_TYPE_STR;
        snprintf(o->val_str, sizeof(o->val_str), "%s", s);
        break;
    }
}

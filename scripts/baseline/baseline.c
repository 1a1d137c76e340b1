// llamago-baseline: the out-of-process yardstick of `make bench`.
//
// A plain C program, linked against libllama and ggml as ggml's own CMake
// builds them from the pinned module's sources (make system-llama), that
// times prompt processing (ppN) and generation (tgN) the way llama-bench
// does: a context of n_prompt + n_gen cells per test, a ggml threadpool of
// the test's threads attached to it (polling level 50), one warm-up run,
// then r repetitions each starting from an empty KV cache; prompt tokens
// in batches of -b with the first one BOS, generation one token at a time
// with a synchronize after each. Random token ids stand in for text, as in
// llama-bench. It prints one JSON object per test, with llama-bench's
// field names (the ones package bench reads), so that `llamago bench` and
// this program can be compared process by process.
//
// Usage: llamago-baseline -m MODEL [-p N] [-n N] [-r N] [-t N] [-fa 0|1]
//                         [-b N] [-ub N] [--poll N] [-pl N]
//
// -pl N times tg as N sequences generating at once (a token of each in
// every decode); its test is named tgNxN, its tokens count every sequence.
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "ggml-cpu.h"
#include "llama.h"

struct options {
    const char * model;
    int          n_prompt, n_gen, reps, threads, flash_attn, n_batch, n_ubatch, poll, n_parallel;
};

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

// A xorshift64 generator: token ids only need to be spread over the
// vocabulary, not to be llama-bench's std::rand sequence.
static llama_token next_token(uint64_t * s, int32_t n_vocab) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return (llama_token) (*s % (uint64_t) n_vocab);
}

static bool prompt_pass(struct llama_context * ctx, int n_prompt, int n_batch, uint64_t * s) {
    const struct llama_vocab * vocab   = llama_model_get_vocab(llama_get_model(ctx));
    const int32_t              n_vocab = llama_vocab_n_tokens(vocab);
    llama_token *              toks    = malloc(sizeof(llama_token) * (size_t) n_batch);
    bool                       ok      = toks != NULL;
    for (int done = 0; ok && done < n_prompt;) {
        const int n = n_prompt - done < n_batch ? n_prompt - done : n_batch;
        for (int i = 0; i < n; i++) {
            toks[i] = next_token(s, n_vocab);
        }
        if (done == 0 && llama_vocab_get_add_bos(vocab)) {
            toks[0] = llama_vocab_bos(vocab);
        }
        ok = llama_decode(ctx, llama_batch_get_one(toks, n)) == 0;
        done += n;
    }
    llama_synchronize(ctx);
    free(toks);
    return ok;
}

static bool gen_pass(struct llama_context * ctx, int n_gen, uint64_t * s) {
    const struct llama_vocab * vocab   = llama_model_get_vocab(llama_get_model(ctx));
    const int32_t              n_vocab = llama_vocab_n_tokens(vocab);
    llama_token tok = llama_vocab_get_add_bos(vocab) ? llama_vocab_bos(vocab) : next_token(s, n_vocab);
    for (int i = 0; i < n_gen; i++) {
        if (llama_decode(ctx, llama_batch_get_one(&tok, 1)) != 0) {
            return false;
        }
        llama_synchronize(ctx);
        tok = next_token(s, n_vocab);
    }
    return true;
}

// gen_pass_seqs generates n_gen tokens in each of n_seq sequences at once:
// every decode holds one token of each sequence, all with logits, as
// llama-batched-bench and a server's continuous batching decode them.
static bool gen_pass_seqs(struct llama_context * ctx, int n_gen, int n_seq, uint64_t * s) {
    const struct llama_vocab * vocab   = llama_model_get_vocab(llama_get_model(ctx));
    const int32_t              n_vocab = llama_vocab_n_tokens(vocab);
    struct llama_batch         b       = llama_batch_init(n_seq, 0, 1);
    bool                       ok      = true;
    for (int i = 0; ok && i < n_gen; i++) {
        b.n_tokens = n_seq;
        for (int q = 0; q < n_seq; q++) {
            b.token[q]     = i == 0 && llama_vocab_get_add_bos(vocab) ? llama_vocab_bos(vocab) : next_token(s, n_vocab);
            b.pos[q]       = i;
            b.n_seq_id[q]  = 1;
            b.seq_id[q][0] = q;
            b.logits[q]    = 1;
        }
        ok = llama_decode(ctx, b) == 0;
        llama_synchronize(ctx);
    }
    llama_batch_free(b);
    return ok;
}

static void print_json_string(const char * s) {
    putchar('"');
    for (; *s; s++) {
        const unsigned char c = (unsigned char) *s;
        if (c == '"' || c == '\\') {
            printf("\\%c", c);
        } else if (c < 0x20) {
            printf("\\u%04x", c);
        } else {
            putchar(c);
        }
    }
    putchar('"');
}

static const char * cpu_name(char * buf, size_t n) {
    snprintf(buf, n, "unknown");
    FILE * f = fopen("/proc/cpuinfo", "r");
    if (f == NULL) {
        return buf;
    }
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) == 0) {
            const char * v = strchr(line, ':');
            if (v != NULL) {
                v++;
                while (*v == ' ' || *v == '\t') {
                    v++;
                }
                snprintf(buf, n, "%s", v);
                buf[strcspn(buf, "\n")] = 0;
            }
            break;
        }
    }
    fclose(f);
    return buf;
}

// run_test measures one test (pp when n_gen is 0, tg when n_prompt is 0)
// in a context of its own and prints its JSON line; false on failure.
static bool run_test(struct llama_model * model, const struct options * o, int n_prompt, int n_gen) {
    struct llama_context_params cp = llama_context_default_params();
    const int n_seq    = n_gen > 0 && o->n_parallel > 1 ? o->n_parallel : 1;
    cp.n_ctx           = (uint32_t) ((n_prompt + n_gen) * n_seq);
    cp.n_seq_max       = (uint32_t) n_seq;
    cp.n_batch         = (uint32_t) o->n_batch;
    cp.n_ubatch        = (uint32_t) o->n_ubatch;
    cp.n_threads       = o->threads;
    cp.n_threads_batch = o->threads;
    cp.flash_attn_type = o->flash_attn ? LLAMA_FLASH_ATTN_TYPE_ENABLED : LLAMA_FLASH_ATTN_TYPE_DISABLED;
    cp.type_k          = GGML_TYPE_F16;
    cp.type_v          = GGML_TYPE_F16;
    cp.no_perf         = true;
    struct llama_context * ctx = llama_init_from_model(model, cp);
    if (ctx == NULL) {
        fprintf(stderr, "llamago-baseline: cannot create a context\n");
        return false;
    }
    struct ggml_threadpool_params tpp = ggml_threadpool_params_default(o->threads);
    tpp.poll                          = (uint32_t) o->poll;
    struct ggml_threadpool * tp       = ggml_threadpool_new(&tpp);
    if (tp == NULL) {
        fprintf(stderr, "llamago-baseline: cannot create a threadpool\n");
        llama_free(ctx);
        return false;
    }
    llama_attach_threadpool(ctx, tp, NULL);

    uint64_t s  = 0x9e3779b97f4a7c15ull;
    bool     ok = true;
    // Warm-up, as llama-bench: the whole prompt, or one generated token.
    if (n_prompt > 0) {
        ok = prompt_pass(ctx, n_prompt, o->n_batch, &s);
    }
    if (ok && n_gen > 0) {
        ok = n_seq > 1 ? gen_pass_seqs(ctx, 1, n_seq, &s) : gen_pass(ctx, 1, &s);
    }
    int64_t * samples = calloc((size_t) o->reps, sizeof(int64_t));
    ok                = ok && samples != NULL;
    for (int r = 0; ok && r < o->reps; r++) {
        llama_memory_clear(llama_get_memory(ctx), false);
        const int64_t t0 = now_ns();
        if (n_prompt > 0) {
            ok = prompt_pass(ctx, n_prompt, o->n_batch, &s);
        }
        if (ok && n_gen > 0) {
            ok = n_seq > 1 ? gen_pass_seqs(ctx, n_gen, n_seq, &s) : gen_pass(ctx, n_gen, &s);
        }
        samples[r] = now_ns() - t0;
    }
    llama_free(ctx);
    ggml_threadpool_free(tp);
    if (!ok) {
        fprintf(stderr, "llamago-baseline: decoding failed\n");
        free(samples);
        return false;
    }

    const double n_tok = n_prompt + (double) n_gen * n_seq;
    double       m_ns = 0, m_ts = 0, v_ns = 0, v_ts = 0;
    for (int r = 0; r < o->reps; r++) {
        m_ns += (double) samples[r] / o->reps;
        m_ts += n_tok * 1e9 / (double) samples[r] / o->reps;
    }
    for (int r = 0; r < o->reps; r++) {
        const double ts = n_tok * 1e9 / (double) samples[r];
        v_ns += ((double) samples[r] - m_ns) * ((double) samples[r] - m_ns);
        v_ts += (ts - m_ts) * (ts - m_ts);
    }
    const double sd_ns = o->reps > 1 ? sqrt(v_ns / (o->reps - 1)) : 0;
    const double sd_ts = o->reps > 1 ? sqrt(v_ts / (o->reps - 1)) : 0;

    char desc[256], cpu[256], when[32];
    llama_model_desc(model, desc, sizeof desc);
    const time_t t = time(NULL);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
    printf("{\"build_commit\":\"baseline\",\"cpu_info\":");
    print_json_string(cpu_name(cpu, sizeof cpu));
    printf(",\"backends\":\"CPU\",\"model_filename\":");
    print_json_string(o->model);
    printf(",\"model_type\":");
    print_json_string(desc);
    printf(",\"model_size\":%" PRIu64 ",\"model_n_params\":%" PRIu64, llama_model_size(model), llama_model_n_params(model));
    printf(",\"n_batch\":%d,\"n_ubatch\":%d,\"n_threads\":%d,\"poll\":%d", o->n_batch, o->n_ubatch, o->threads, o->poll);
    printf(",\"type_k\":\"f16\",\"type_v\":\"f16\",\"n_gpu_layers\":0,\"flash_attn\":%d,\"use_mmap\":true", o->flash_attn);
    if (n_seq > 1) {
        printf(",\"n_parallel\":%d", n_seq);
    }
    printf(",\"n_prompt\":%d,\"n_gen\":%d,\"n_depth\":0,\"test_time\":\"%s\"", n_prompt, n_gen, when);
    printf(",\"avg_ns\":%.0f,\"stddev_ns\":%.0f,\"avg_ts\":%.6f,\"stddev_ts\":%.6f", m_ns, sd_ns, m_ts, sd_ts);
    printf(",\"samples_ns\":[");
    for (int r = 0; r < o->reps; r++) {
        printf("%s%" PRId64, r ? "," : "", samples[r]);
    }
    printf("],\"samples_ts\":[");
    for (int r = 0; r < o->reps; r++) {
        printf("%s%.6f", r ? "," : "", n_tok * 1e9 / (double) samples[r]);
    }
    if (n_gen == 0) {
        printf("],\"test\":\"pp%d\"}\n", n_prompt);
    } else {
        printf("],\"test\":\"tg%d", n_gen);
        if (n_seq > 1) {
            printf("x%d", n_seq);
        }
        printf("\"}\n");
    }
    fflush(stdout);
    free(samples);
    return true;
}

static void quiet_log(enum ggml_log_level level, const char * text, void * user) {
    (void) user;
    if (level == GGML_LOG_LEVEL_ERROR) {
        fputs(text, stderr);
    }
}

static int usage(void) {
    fprintf(stderr,
            "usage: llamago-baseline -m MODEL [-p N] [-n N] [-r N] [-t N] [-fa 0|1] [-b N] [-ub N] [--poll N] [-pl N]\n");
    return 2;
}

int main(int argc, char ** argv) {
    struct options o = { NULL, 512, 128, 5, 2, 0, 2048, 512, 50, 1 };
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc) {
            return usage();
        }
        const char * k = argv[i];
        const char * v = argv[++i];
        int *        dst = NULL;
        if (strcmp(k, "-m") == 0) {
            o.model = v;
            continue;
        }
        if (strcmp(k, "-p") == 0) {
            dst = &o.n_prompt;
        } else if (strcmp(k, "-n") == 0) {
            dst = &o.n_gen;
        } else if (strcmp(k, "-r") == 0) {
            dst = &o.reps;
        } else if (strcmp(k, "-t") == 0) {
            dst = &o.threads;
        } else if (strcmp(k, "-fa") == 0) {
            dst = &o.flash_attn;
        } else if (strcmp(k, "-b") == 0) {
            dst = &o.n_batch;
        } else if (strcmp(k, "-ub") == 0) {
            dst = &o.n_ubatch;
        } else if (strcmp(k, "--poll") == 0) {
            dst = &o.poll;
        } else if (strcmp(k, "-pl") == 0) {
            dst = &o.n_parallel;
        } else {
            return usage();
        }
        char * end;
        const long n = strtol(v, &end, 10);
        if (*end != 0 || n < 0 || n > 1 << 20) {
            return usage();
        }
        *dst = (int) n;
    }
    if (o.model == NULL || o.reps < 1 || o.threads < 1 || o.n_batch < 1 || o.n_ubatch < 1 || o.n_parallel < 1 ||
        (o.n_prompt == 0 && o.n_gen == 0)) {
        return usage();
    }
    struct stat st;
    if (stat(o.model, &st) != 0) {
        fprintf(stderr, "llamago-baseline: %s: no such file\n", o.model);
        return 1;
    }

    llama_log_set(quiet_log, NULL);
    llama_backend_init();
    struct llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers              = 0;
    struct llama_model * model   = llama_model_load_from_file(o.model, mp);
    if (model == NULL) {
        fprintf(stderr, "llamago-baseline: cannot load %s\n", o.model);
        return 1;
    }
    bool ok = true;
    if (o.n_prompt > 0) {
        ok = run_test(model, &o, o.n_prompt, 0);
    }
    if (ok && o.n_gen > 0) {
        ok = run_test(model, &o, 0, o.n_gen);
    }
    llama_model_free(model);
    llama_backend_free();
    return ok ? 0 : 1;
}

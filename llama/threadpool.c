#include "threadpool.h"

#include "ggml-backend.h"

// The pool functions are looked up through the CPU backend's registry, as
// llama.cpp's tools do: the CPU backend may be a library loaded at run
// time (a CPU variant, or an installed llama.cpp), whose pools are the
// ones its graph computations accept.
static void * cpu_proc(const char * name) {
    ggml_backend_reg_t reg = ggml_backend_reg_by_name("CPU");
    return reg == NULL ? NULL : ggml_backend_reg_get_proc_address(reg, name);
}

typedef struct ggml_threadpool * (*threadpool_new_fn)(struct ggml_threadpool_params *);
typedef void (*threadpool_free_fn)(struct ggml_threadpool *);

struct ggml_threadpool * llamago_threadpool_new(int32_t n_threads, uint32_t poll) {
    threadpool_new_fn fn = (threadpool_new_fn) cpu_proc("ggml_threadpool_new");
    if (fn == NULL) {
        return NULL;
    }
    struct ggml_threadpool_params p = ggml_threadpool_params_default(n_threads);
    p.poll                          = poll;
    return fn(&p);
}

void llamago_threadpool_free(struct ggml_threadpool * tp) {
    if (tp == NULL) {
        return;
    }
    threadpool_free_fn fn = (threadpool_free_fn) cpu_proc("ggml_threadpool_free");
    if (fn != NULL) {
        fn(tp);
    }
}

#include "ctxfree.h"

#if defined(__GLIBC__)
#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>

// At the pinned commit, ggml_backend_sched_free reads each backend of the
// scheduler (its reset hook, added by one of ollama's patches to ggml)
// after ~llama_context has freed those backends: members are destroyed in
// the reverse order of their declaration, and the scheduler is declared
// before the backends. The read is harmless while the freed memory stays
// mapped, which it does unless glibc returns it to the system in between:
// a thread arena whose last heap becomes empty is unmapped at once, and a
// test that closed eight contexts in a row crashed there on a loaded
// machine. With a top pad as large as a heap (64 MiB on 64-bit), glibc
// neither deletes nor shrinks heaps, nor trims the main arena, so
// llama_free runs with that pad and the default (128 KiB, or the
// MALLOC_TOP_PAD_ the process started with) is restored after it.
static pthread_mutex_t free_mu = PTHREAD_MUTEX_INITIALIZER;

static int default_top_pad(void) {
    const char * s = getenv("MALLOC_TOP_PAD_");
    if (s != NULL && *s != 0) {
        char *     end;
        const long v = strtol(s, &end, 10);
        if (*end == 0 && v >= 0 && v <= (1L << 30)) {
            return (int) v;
        }
    }
    return 128 * 1024;
}

void llamago_free_context(struct llama_context * ctx) {
    pthread_mutex_lock(&free_mu);
    mallopt(M_TOP_PAD, 64 << 20);
    llama_free(ctx);
    mallopt(M_TOP_PAD, default_top_pad());
    pthread_mutex_unlock(&free_mu);
}
#else
void llamago_free_context(struct llama_context * ctx) {
    llama_free(ctx);
}
#endif

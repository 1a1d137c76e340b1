#include "backend_load.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ggml.h"
#include "shim.h"

#ifdef _WIN32
#include <windows.h>

static void * dl_open(const char * path) {
    wchar_t wpath[4096];
    if (MultiByteToWideChar(CP_UTF8, 0, path, -1, wpath, (int) (sizeof(wpath) / sizeof(wpath[0]))) == 0) {
        return NULL;
    }
    UINT old = SetErrorMode(SEM_FAILCRITICALERRORS);
    HMODULE h = LoadLibraryW(wpath);
    SetErrorMode(old);
    return (void *) h;
}

static void * dl_sym(void * h, const char * name) { return (void *) GetProcAddress((HMODULE) h, name); }

static void dl_close(void * h) { FreeLibrary((HMODULE) h); }

static void dl_error(char * buf, size_t n) {
    DWORD code = GetLastError();
    if (FormatMessageA(FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS, NULL, code, 0, buf, (DWORD) n, NULL) == 0) {
        snprintf(buf, n, "LoadLibrary error %lu", (unsigned long) code);
    }
    size_t len = strlen(buf);
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' ')) {
        buf[--len] = 0;
    }
}
#else
#include <dlfcn.h>

static void * dl_open(const char * path) { return dlopen(path, RTLD_NOW | RTLD_LOCAL); }

static void * dl_sym(void * h, const char * name) { return dlsym(h, name); }

static void dl_close(void * h) { dlclose(h); }

static void dl_error(char * buf, size_t n) {
    const char * e = dlerror();
    snprintf(buf, n, "%s", e != NULL ? e : "unknown dlopen error");
}
#endif

typedef ggml_backend_reg_t (*init_fn)(void);
typedef int (*score_fn)(void);
typedef const char * (*source_fn)(void);
typedef void (*log_set_fn)(ggml_log_callback, void *);

void * llamago_backend_open(const char * path, const char * want_source, int * score, char * err, size_t err_len) {
    *score = -1;
    err[0] = 0;
    void * h = dl_open(path);
    if (h == NULL) {
        dl_error(err, err_len);
        return NULL;
    }
    if (dl_sym(h, "ggml_backend_init") == NULL) {
        snprintf(err, err_len, "not a ggml backend: it has no ggml_backend_init");
        dl_close(h);
        return NULL;
    }
    if (want_source != NULL && want_source[0] != 0) {
        source_fn src = (source_fn) dl_sym(h, "llamago_ggml_source");
        if (src == NULL) {
            snprintf(err, err_len,
                     "not built by scripts/build-cuda.sh (it has no llamago_ggml_source): its ggml may not be %s, "
                     "which this program is built from (LLAMAGO_BACKEND_UNCHECKED=1 loads it anyway)",
                     want_source);
            dl_close(h);
            return NULL;
        }
        const char * got = src();
        if (got == NULL || strcmp(got, want_source) != 0) {
            snprintf(err, err_len, "built from the ggml of %s, but this program is built from %s: rebuild it with scripts/build-cuda.sh",
                     got != NULL ? got : "(null)", want_source);
            dl_close(h);
            return NULL;
        }
    }
    // A library linked with its own libggml-base logs through that copy's
    // callback, which prints to stderr until it is set.
    log_set_fn log_set = (log_set_fn) dl_sym(h, "ggml_log_set");
    if (log_set != NULL && log_set != ggml_log_set) {
        log_set((ggml_log_callback) llamago_log, NULL);
    }
    score_fn sf = (score_fn) dl_sym(h, "ggml_backend_score");
    if (sf != NULL) {
        *score = sf();
        if (*score == 0) {
            snprintf(err, err_len, "the backend does not support this machine (its ggml_backend_score is 0)");
            dl_close(h);
            return NULL;
        }
    }
    return h;
}

void llamago_backend_close(void * handle) {
    if (handle != NULL) {
        dl_close(handle);
    }
}

struct capture {
    ggml_log_callback prev;
    void * prev_data;
    char * buf;
    size_t len, cap;
    int error; // the current message is an error
};

static void capture_log(enum ggml_log_level level, const char * text, void * user_data) {
    struct capture * c = (struct capture *) user_data;
    if (level != GGML_LOG_LEVEL_CONT) {
        c->error = level == GGML_LOG_LEVEL_ERROR;
    }
    if (c->error && c->cap > 0) {
        size_t n = strlen(text);
        if (n > c->cap - 1 - c->len) {
            n = c->cap - 1 - c->len;
        }
        memcpy(c->buf + c->len, text, n);
        c->len += n;
        c->buf[c->len] = 0;
    }
    if (c->prev != NULL) {
        c->prev(level, text, c->prev_data);
    }
}

ggml_backend_reg_t llamago_backend_load(const char * path, char * err, size_t err_len) {
    struct capture c = { NULL, NULL, err, 0, err_len, 0 };
    if (err_len > 0) {
        err[0] = 0;
    }
    ggml_log_get(&c.prev, &c.prev_data);
    ggml_log_set(capture_log, &c);
    ggml_backend_reg_t reg = ggml_backend_load(path);
    ggml_log_set(c.prev, c.prev_data);
    return reg;
}

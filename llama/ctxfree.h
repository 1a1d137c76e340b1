#pragma once

#include "llama.h"

// llamago_free_context is llama_free with the C allocator's trimming held
// off for its duration (see ctxfree.c).
void llamago_free_context(struct llama_context * ctx);

package llama

/*
#include "llama.h"
*/
import "C"

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// contextMemory estimates what llama_init_from_model allocates for a
// context with params p, as the fit planner does: the KV cache of every
// layer and the compute buffers. The caller holds the model. ok is false
// for a model the planner cannot read.
func (m *Model) contextMemory(p *C.struct_llama_context_params) (kv, compute uint64, nCtx int, ok bool) {
	f := m.info.fit
	if f == nil {
		return 0, 0, 0, false
	}
	nCtx = int(p.n_ctx)
	if nCtx == 0 {
		nCtx = f.nCtxTrain
	}
	nCtx = (max(nCtx, 1) + 255) / 256 * 256
	nUB := min(max(int(p.n_ubatch), 1), nCtx)
	fa := FlashAttention(p.flash_attn_type) != FlashAttentionOff
	bk, okK := cacheTypeBytes[CacheType(p.type_k)]
	bv, okV := cacheTypeBytes[CacheType(p.type_v)]
	// Recurrent and sliding-window layers keep less than a full cache:
	// only plain attention models are charged for it.
	if okK && okV && !f.noKV && m.info.memory == memoryKV {
		for il := range f.nLayer {
			n := float64(nCtx) * float64(f.headKV[il])
			kv += uint64(n*float64(f.keyLen)*bk + n*float64(f.valLen)*bv)
		}
	}
	compute = computeEstimate(*f, true, true, true, nCtx, nUB, fa)
	return kv, compute, nCtx, true
}

// checkContextMemory refuses a context that would need more memory than
// the system has available, before llama.cpp allocates (and zeroes) its
// KV cache only to fail on its compute buffers many seconds later.
func (m *Model) checkContextMemory(p *C.struct_llama_context_params) error {
	kv, compute, nCtx, ok := m.contextMemory(p)
	if !ok {
		return nil
	}
	avail := memoryAvailable()
	if avail == 0 || kv+compute <= avail {
		return nil
	}
	return fmt.Errorf("%w: a context of %d positions needs about %s (KV cache %s, compute buffers %s), and %s is available",
		ErrOutOfMemory, nCtx, formatBytes(kv+compute), formatBytes(kv), formatBytes(compute), formatBytes(avail))
}

// memoryAvailable is availableMemory, replaced in tests.
var memoryAvailable = availableMemory

// availableMemory is the memory a context may take: the system's available
// memory (within the process's cgroup limit) and the free memory of the
// GPUs. 0 means unknown.
func availableMemory() uint64 {
	var gpus, cpu uint64
	for _, d := range Devices() {
		if d.Type == DeviceCPU {
			cpu = d.FreeMemory
		} else {
			gpus += d.FreeMemory
		}
	}
	if sys := systemAvailableMemory(); sys > 0 {
		cpu = sys
	}
	return cpu + gpus
}

// systemAvailableMemory reads Linux's MemAvailable, bounded by the cgroup's
// limit less its usage; 0 elsewhere (ggml's CPU device then says).
func systemAvailableMemory() uint64 {
	avail := meminfo("/proc/meminfo", "MemAvailable")
	for _, cg := range [][2]string{
		{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"},
		{"/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"},
	} {
		limit, okL := readUint(cg[0])
		used, okU := readUint(cg[1])
		if okL && okU && limit > used && (avail == 0 || limit-used < avail) {
			avail = limit - used
		}
	}
	return avail
}

// meminfo returns a field of /proc/meminfo in bytes, 0 if absent.
func meminfo(path, field string) uint64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		k, v, ok := strings.Cut(s.Text(), ":")
		if !ok || k != field {
			continue
		}
		fs := strings.Fields(v)
		if len(fs) == 0 {
			return 0
		}
		n, err := strconv.ParseUint(fs[0], 10, 64)
		if err != nil || n > 1<<50 {
			return 0
		}
		if len(fs) > 1 && fs[1] == "kB" {
			n *= 1024
		}
		return n
	}
	return 0
}

// readUint reads a file holding one number ("max" is not one).
func readUint(path string) (uint64, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	return n, err == nil
}

// formatBytes writes n in binary units: "6.0 GiB".
func formatBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}

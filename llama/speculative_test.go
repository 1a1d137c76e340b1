package llama_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/llamago/llamago/gguf"
	"github.com/llamago/llamago/internal/testllama"
	"github.com/llamago/llamago/internal/testmodels"
	"github.com/llamago/llamago/llama"
	"github.com/llamago/llamago/models"
)

// synthStoriesDraft writes and loads a random-weight "tiny" model with
// stories260K's vocabulary: a draft that matches the vocabulary and
// drafts badly, so that nearly every draft is rejected.
func synthStoriesDraft(t *testing.T) *llama.Model { return synthDraft(t, nil) }

// synthDraft is synthStoriesDraft with the vocabulary's token texts
// changed by edit first, if not nil.
func synthDraft(t *testing.T, edit func(tokens []string)) *llama.Model {
	t.Helper()
	dir := t.TempDir()
	vocab := testmodels.Path(t, "stories260K.gguf")
	if edit != nil {
		f, err := gguf.Open(vocab)
		if err != nil {
			t.Fatal(err)
		}
		v := &gguf.File{}
		for _, kv := range f.KV {
			if kv.Key == "tokenizer.ggml.tokens" {
				toks := kv.Value.Strings()
				edit(toks)
				kv.Value = gguf.ArrayValue(toks)
			}
			if strings.HasPrefix(kv.Key, "tokenizer.") {
				v.KV = append(v.KV, kv)
			}
		}
		vocab = filepath.Join(dir, "vocab.gguf")
		w, err := os.Create(vocab)
		if err != nil {
			t.Fatal(err)
		}
		if err := gguf.Write(w, v, nil); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	s, _ := models.LookupShape("tiny")
	path := filepath.Join(dir, "draft.gguf")
	err := models.SynthesizeFile(path, models.SynthOptions{Shape: s, Vocab: vocab, Type: gguf.TensorF32, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	d, err := llama.Load(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// specJobs are generations that end every way: max tokens, stop strings
// (one that matches across tokens), EOS, and a repeating prompt for
// prompt lookup.
func specJobs() []seqJob {
	return []seqJob{
		{prompt: storiesPrompt, opts: greedy(90)},
		{prompt: longStoriesPrompt, opts: greedy(60)},
		{prompt: "The little dog", opts: append(greedy(80), llama.WithStop("."))},
		{prompt: "One day", opts: append(greedy(120), llama.WithStop("happy", "sad"))},
		{prompt: "Lily", opts: append(greedy(100), llama.WithStop("and the"))},
		{prompt: storiesPrompt, opts: greedy(1)},
		{prompt: storiesPrompt, opts: greedy(2)},
		{prompt: storiesPrompt, opts: greedy(17)},
		{prompt: "Tom said", opts: greedy(-1)}, // to EOS or the end of the context
	}
}

// sameRun compares a speculative generation with the one without: the
// same tokens, text and end.
func sameRun(t *testing.T, name string, want, got run) bool {
	t.Helper()
	errText := func(err error) string {
		if err == nil {
			return ""
		}
		return err.Error()
	}
	if !slices.Equal(got.ids, want.ids) || got.text != want.text || got.stats.StopReason != want.stats.StopReason ||
		got.stats.StopString != want.stats.StopString || got.stats.GeneratedTokens != want.stats.GeneratedTokens ||
		errText(got.err) != errText(want.err) {
		t.Errorf("%s:\n got %q (%d tokens, %v %q, %v)\nwant %q (%d tokens, %v %q, %v)", name,
			got.text, len(got.ids), got.stats.StopReason, got.stats.StopString, got.err,
			want.text, len(want.ids), want.stats.StopReason, want.stats.StopString, want.err)
		return false
	}
	for i, tok := range got.tokens {
		if tok.ID != llama.NullToken && tok.Index != i {
			t.Errorf("%s: token %d has Index %d", name, i, tok.Index)
			return false
		}
	}
	return true
}

// sameGreedy is sameRun, but for a near tie: the model checks drafts in a
// batch, whose logits llama.cpp computes with other kernels than a lone
// token's, rounded differently (see nearTie). Where the best two logits
// of the generation without speculation were closer than that, the two
// may go separate ways, as in any shared batch.
func sameGreedy(t *testing.T, m *llama.Model, copts []llama.ContextOption, name, prompt string, want, got run) bool {
	t.Helper()
	k := 0
	for k < len(want.ids) && k < len(got.ids) && want.ids[k] == got.ids[k] {
		k++
	}
	if k == len(want.ids) && k == len(got.ids) || got.err != nil || k == len(want.ids) {
		return sameRun(t, name, want, got)
	}
	checkSameAsAlone(t, m, copts, name, prompt, want, got)
	return false
}

// TestSpeculativeGreedyIdentity: with greedy sampling, speculative
// decoding gives token for token what generation without it gives, with
// a draft equal to the model (nearly every draft accepted), a random
// draft with the same vocabulary (nearly every draft rejected) and prompt
// lookup (some of each), whatever ends the generation.
func TestSpeculativeGreedyIdentity(t *testing.T) {
	m := loadModel(t, "stories260K.gguf")
	jobs := specJobs()
	base := newContext(t, m, llama.WithContextSize(256))
	want := make([]run, len(jobs))
	for i, j := range jobs {
		want[i] = generate(t, base, context.Background(), j.prompt, j.opts...)
		base.ClearMemory()
	}
	if want[8].stats.StopReason != llama.StopEOG && want[8].stats.StopReason != llama.StopContextFull {
		t.Fatalf("unlimited job ended with %v", want[8].stats.StopReason)
	}
	other := synthStoriesDraft(t)
	for _, tc := range []struct {
		name  string
		draft *llama.Model
		spec  llama.Speculation
	}{
		{"draft=model", m, llama.DefaultSpeculation()},
		{"draft=model max 3", m, llama.Speculation{DraftMax: 3, PMin: 0}},
		{"random draft", other, llama.Speculation{DraftMax: 5, PMin: 0}},
		{"random draft min 4", other, llama.Speculation{DraftMax: 6, DraftMin: 4}},
		{"draft=model p-min 0.9", m, llama.Speculation{DraftMax: 16, PMin: 0.9}},
		{"prompt lookup 2", nil, llama.Speculation{DraftMax: 8, NGram: 2}},
		{"prompt lookup 1 min 2", nil, llama.Speculation{DraftMax: 16, DraftMin: 2, NGram: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := []llama.ContextOption{llama.WithContextSize(256)}
			if tc.draft != nil {
				opts = append(opts, llama.WithDraftModel(tc.draft))
			}
			c := newContext(t, m, opts...)
			var drafted, accepted, same int
			for i, j := range jobs {
				got := generate(t, c, context.Background(), j.prompt, append(slices.Clip(j.opts), llama.WithSpeculation(tc.spec))...)
				if sameGreedy(t, m, opts[:1], fmt.Sprintf("job %d", i), j.prompt, want[i], got) {
					same++
				}
				drafted += got.stats.DraftTokens
				accepted += got.stats.AcceptedTokens
				if got.stats.AcceptedTokens > got.stats.DraftTokens || got.stats.AcceptedTokens >= max(got.stats.GeneratedTokens, 1) {
					t.Errorf("job %d: %d of %d drafts accepted, %d tokens generated", i, got.stats.AcceptedTokens, got.stats.DraftTokens, got.stats.GeneratedTokens)
				}
			}
			t.Logf("%d drafted, %d accepted; %d of %d jobs the same token for token", drafted, accepted, same, len(jobs))
			if drafted == 0 {
				t.Error("nothing was drafted")
			}
			if tc.draft == m && accepted < drafted*9/10 {
				t.Errorf("the model as its own draft: %d of %d drafts accepted", accepted, drafted)
			}
			if tc.draft != nil && tc.draft != m && accepted == drafted {
				t.Errorf("a random draft had every draft accepted (%d)", drafted)
			}
		})
	}
}

// TestSpeculativeSamplingSeed: with a fixed seed, sampling makes one call
// of the sampler per emitted token, on the model's logits after the same
// tokens, as without speculation: the same text.
func TestSpeculativeSamplingSeed(t *testing.T) {
	m := loadModel(t, "stories260K.gguf")
	opts := []llama.GenerateOption{llama.WithMaxTokens(80), llama.WithSampling(llama.WithSeed(42), llama.WithTemperature(0.9))}
	want := mustGenerate(t, newContext(t, m), storiesPrompt, opts...)
	c := newContext(t, m, llama.WithDraftModel(m))
	got := mustGenerate(t, c, storiesPrompt, append(opts, llama.WithSpeculation(llama.Speculation{DraftMax: 6}))...)
	sameRun(t, "seed 42", want, got)
	if got.stats.AcceptedTokens == 0 {
		t.Errorf("no draft accepted (%d drafted)", got.stats.DraftTokens)
	}
}

// TestSpeculativeBatched: speculating generations in sequences of one
// context, next to generations that do not speculate, each give what
// they give alone without speculation (but for near ties, as any batch).
func TestSpeculativeBatched(t *testing.T) {
	m := loadModel(t, "stories260K.gguf")
	jobs := seqJobs()
	copts := []llama.ContextOption{llama.WithSequences(len(jobs))}
	alone := runAlone(t, newContext(t, m, copts...), jobs)
	for i := range jobs {
		switch i % 3 {
		case 0:
			jobs[i].opts = append(jobs[i].opts, llama.WithSpeculation(llama.Speculation{DraftMax: 4}))
		case 1:
			jobs[i].opts = append(jobs[i].opts, llama.WithSpeculation(llama.Speculation{DraftMax: 6, NGram: 2}))
		default:
			jobs[i].opts = append(jobs[i].opts, llama.WithSpeculation(llama.Speculation{})) // off
		}
	}
	c := newContext(t, m, append(copts, llama.WithDraftModel(m))...)
	together := runTogether(t, c, jobs)
	for i, j := range jobs {
		checkSameAsAlone(t, m, copts, fmt.Sprintf("job %d", i), j.prompt, alone[i], together[i])
	}
	if n := llama.WidestStep(c); n < 3 {
		t.Errorf("at most %d sequences were decoded together", n)
	}
	if together[0].stats.DraftTokens == 0 || together[2].stats.DraftTokens != 0 {
		t.Errorf("drafted: %d with a draft model, %d with speculation off", together[0].stats.DraftTokens, together[2].stats.DraftTokens)
	}
}

// TestSpeculativeCancel: a speculating generation cancelled mid-way ends
// with ctx.Err() after the tokens it gave, which are those of the
// generation without speculation; the sequence's cache holds what they
// say, so that the next generation in it gives the same again.
func TestSpeculativeCancel(t *testing.T) {
	m := loadModel(t, "stories260K.gguf")
	want := mustGenerate(t, newContext(t, m), storiesPrompt, greedy(60)...)
	for _, name := range []string{"draft model", "random draft", "prompt lookup"} {
		t.Run(name, func(t *testing.T) {
			var c *llama.Context
			spec := llama.Speculation{DraftMax: 8, NGram: 1}
			switch name {
			case "draft model":
				c, spec.NGram = newContext(t, m, llama.WithDraftModel(m)), 0
			case "random draft":
				c, spec.NGram = newContext(t, m, llama.WithDraftModel(synthStoriesDraft(t))), 0
			default:
				c = newContext(t, m)
			}
			q, err := c.NewSequence()
			if err != nil {
				t.Fatal(err)
			}
			defer q.Close()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var r run
			n := 0
			for tok, err := range q.Generate(ctx, storiesPrompt, append(greedy(60), llama.WithSpeculation(spec), llama.WithStats(&r.stats))...) {
				if err != nil {
					r.err = err
					continue
				}
				r.ids = append(r.ids, tok.ID)
				if n++; n == 7 {
					cancel()
				}
			}
			if !errors.Is(r.err, context.Canceled) || r.stats.StopReason != llama.StopCancelled || len(r.ids) < 7 ||
				!slices.Equal(r.ids, want.ids[:len(r.ids)]) {
				t.Errorf("cancelled: %v %v, %d tokens %v, want a prefix of %v", r.err, r.stats.StopReason, len(r.ids), r.ids, want.ids)
			}
			// It holds the prompt and tokens generated: those taken, and
			// maybe more, accepted in the step that was cancelled.
			toks, ok := q.Tokens()
			if n, _ := m.Tokenize(storiesPrompt, llama.AddSpecial); !ok || len(toks) < len(n) || !slices.Equal(toks[:len(n)], n) ||
				!slices.Equal(toks[len(n):], want.ids[:len(toks)-len(n)]) {
				t.Errorf("the sequence holds %v after the cancel", toks)
			}
			if _, hi, _ := c.PositionRange(q.ID()); hi != len(toks)-1 {
				t.Errorf("the cache holds positions up to %d, the sequence %d tokens", hi, len(toks))
			}
			var again run
			collect(t, q.Generate(context.Background(), storiesPrompt, append(greedy(60), llama.WithSpeculation(spec), llama.WithStats(&again.stats))...), &again)
			sameRun(t, "again", want, again)
		})
	}
}

// TestSpeculativeContextFull: a speculating generation that runs into the
// end of the sequence's context ends where one without speculation does,
// with ErrContextFull, drafts never past the end.
func TestSpeculativeContextFull(t *testing.T) {
	m := loadModel(t, "stories260K.gguf")
	opts := []llama.GenerateOption{llama.WithSampling(llama.WithGreedy(), llama.WithIgnoreEOS())}
	want := generate(t, newContext(t, m, llama.WithContextSize(256)), context.Background(), longStoriesPrompt, opts...)
	if !errors.Is(want.err, llama.ErrContextFull) {
		t.Fatalf("without speculation: %v", want.err)
	}
	for _, spec := range []llama.Speculation{{DraftMax: 16}, {DraftMax: 16, NGram: 1}} {
		c := newContext(t, m, llama.WithContextSize(256), llama.WithDraftModel(m))
		if spec.NGram == 0 {
			// New, larger pools, which the draft's context shares too.
			if err := c.SetThreads(2, 3); err != nil {
				t.Fatal(err)
			}
		}
		got := generate(t, c, context.Background(), longStoriesPrompt, append(opts, llama.WithSpeculation(spec))...)
		sameRun(t, fmt.Sprintf("n-gram %d", spec.NGram), want, got)
		if got.stats.AcceptedTokens == 0 {
			t.Errorf("n-gram %d: nothing accepted", spec.NGram)
		}
	}
}

// TestSpeculativeClose: closing the context, or the draft model, during
// speculating generations ends them or leaves them without drafts; never a
// hang or a crash.
func TestSpeculativeClose(t *testing.T) {
	m := loadModel(t, "stories260K.gguf")
	d := testllama.Load(t, "stories260K.gguf")
	c := newContext(t, m, llama.WithSequences(2), llama.WithDraftModel(d))
	if c.DraftModel() != d {
		t.Fatal("DraftModel is not the draft")
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	counts := make([]int, 2)
	started := make(chan struct{}, 2)
	for i := range 2 {
		wg.Go(func() {
			for _, err := range c.Generate(context.Background(), storiesPrompt, llama.WithSampling(llama.WithGreedy(), llama.WithIgnoreEOS())) {
				if err != nil {
					errs[i] = err
					return
				}
				if counts[i]++; counts[i] == 3 {
					started <- struct{}{}
				}
			}
		})
	}
	<-started
	<-started
	d.Close() // the draft's context closes: no more drafts
	c.Close()
	wg.Wait()
	for i, err := range errs {
		if !errors.Is(err, llama.ErrClosed) && !errors.Is(err, llama.ErrContextFull) {
			t.Errorf("generation %d: %v after %d tokens", i, err, counts[i])
		}
	}
}

// TestDraftRefused: a draft whose vocabulary differs is refused with an
// error naming the difference, and so are other misuses.
func TestDraftRefused(t *testing.T) {
	m := loadModel(t, "stories260K.gguf")
	for _, tc := range []struct {
		name  string
		draft *llama.Model
		want  error
		say   string
	}{
		{"other vocabulary", loadModel(t, "llama-2-tiny-random.gguf"), llama.ErrDraftMismatch, "tokens in its vocabulary"},
		{"recurrent", testllama.Synth(t, "tiny-mamba"), llama.ErrInvalidArgument, "recurrent"},
		{"nil", nil, llama.ErrInvalidArgument, "nil draft"},
	} {
		c, err := m.NewContext(llama.WithDraftModel(tc.draft))
		if c != nil {
			c.Close()
		}
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.say) {
			t.Errorf("%s: %v, want %v saying %q", tc.name, err, tc.want, tc.say)
		}
	}
	// The same vocabulary with one token's text changed.
	edited := synthDraft(t, func(toks []string) { toks[300] = "<changed>" })
	if _, err := m.NewContext(llama.WithDraftModel(edited)); !errors.Is(err, llama.ErrDraftMismatch) || !strings.Contains(err.Error(), "token 300") {
		t.Errorf("token 300 changed: %v", err)
	} else {
		t.Log(err)
	}
	if _, err := m.NewContext(llama.WithDraftModel(m), llama.WithEmbeddings(llama.PoolingMean)); !errors.Is(err, llama.ErrInvalidArgument) {
		t.Errorf("embeddings context with a draft: %v", err)
	}

	// Prompt lookup needs a cache that can drop the rejected tokens.
	mamba := testllama.Synth(t, "tiny-mamba")
	r := generate(t, newContext(t, mamba), context.Background(), "Hello", append(greedy(5), llama.WithSpeculation(llama.Speculation{DraftMax: 4, NGram: 1}))...)
	if !errors.Is(r.err, llama.ErrInvalidArgument) || !strings.Contains(r.err.Error(), "recurrent") {
		t.Errorf("prompt lookup on a recurrent model: %v", r.err)
	}

	c := newContext(t, m)
	for _, spec := range []llama.Speculation{
		{DraftMax: 8},            // no draft model
		{DraftMax: -1, NGram: 2}, // bad values
		{DraftMax: llama.MaxDraft + 1, NGram: 2},
		{DraftMax: 4, DraftMin: 5, NGram: 2},
		{DraftMax: 4, PMin: 1.5},
		{DraftMax: 4, NGram: 1000},
	} {
		r := generate(t, c, context.Background(), storiesPrompt, append(greedy(5), llama.WithSpeculation(spec))...)
		if !errors.Is(r.err, llama.ErrInvalidArgument) || len(r.ids) != 0 {
			t.Errorf("%+v: %v after %d tokens, want ErrInvalidArgument", spec, r.err, len(r.ids))
		}
	}
}

package chat

import (
	"testing"

	"github.com/llamago/llamago/llama"
)

// TestSpeculativeContextShift runs a long conversation on a small
// context, which drops old turns to make room (ShiftContext), with
// speculative decoding: a draft model (the model itself) and prompt
// lookup, whose caches follow the shifted prompts. Every reply is the one
// given without speculation. (A shift in the middle of a reply needs a
// reply longer than the room the policy keeps, which stories260K's
// replies under the chatml template never are; the engine's side of it,
// a generation ending at the context's end, is llama's
// TestSpeculativeContextFull.)
func TestSpeculativeContextShift(t *testing.T) {
	m := loadModel(t, "stories260K.gguf")
	questions := []string{"Once upon a time there was a girl", "She had a dog", "They went to the park", "It started to rain", "They ran home", "Mom made soup"}
	run := func(c *llama.Context, opts ...Option) (replies []string, dropped, drafted, accepted int) {
		s := storiesSession(t, c, append([]Option{WithContextPolicy(ShiftContext(0)), WithMaxTokens(60)}, opts...)...)
		for range 2 {
			for _, q := range questions {
				a, _ := reply(t, s, q)
				replies = append(replies, a)
				st := s.Stats()
				dropped += st.Dropped
				drafted += st.DraftTokens
				accepted += st.AcceptedTokens
			}
		}
		return replies, dropped, drafted, accepted
	}
	want, dropped, drafted, _ := run(newContext(t, m, llama.WithContextSize(256)))
	if dropped == 0 || drafted != 0 {
		t.Fatalf("without speculation: %d messages dropped, %d tokens drafted", dropped, drafted)
	}
	for _, tc := range []struct {
		name string
		c    *llama.Context
		opts []Option
	}{
		{"draft model", newContext(t, m, llama.WithContextSize(256), llama.WithDraftModel(m)), nil},
		{"prompt lookup", newContext(t, m, llama.WithContextSize(256)), []Option{WithSpeculation(llama.Speculation{DraftMax: 8, NGram: 2})}},
	} {
		got, dropped, drafted, accepted := run(tc.c, tc.opts...)
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("%s: reply %d is %q, without speculation %q", tc.name, i, got[i], want[i])
			}
		}
		if dropped == 0 || accepted == 0 {
			t.Errorf("%s: %d messages dropped, %d of %d drafts accepted", tc.name, dropped, accepted, drafted)
		}
		t.Logf("%s: %d messages dropped, %d of %d drafts accepted", tc.name, dropped, accepted, drafted)
	}
}

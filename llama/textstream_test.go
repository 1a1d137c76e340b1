package llama

import "testing"

func TestTextStream(t *testing.T) {
	tests := []struct {
		name    string
		stops   []string
		pieces  []string
		want    []string // released after each piece
		stopped int      // index of the piece that matches a stop, or -1
		stop    int      // the index of the stop string that matches
		flush   string
	}{
		{"plain", nil, []string{"a", "b"}, []string{"a", "b"}, -1, -1, ""},
		{"utf8 split", nil, []string{"\xe4", "\xb8", "\xad!"}, []string{"", "", "中!"}, -1, -1, ""},
		{"utf8 at end", nil, []string{"a\xe4\xb8"}, []string{"a"}, -1, -1, "\xe4\xb8"},
		{"stop in one piece", []string{"END"}, []string{"abcENDxyz"}, []string{"abc"}, 0, 0, ""},
		{"stop across pieces", []string{"END"}, []string{"ab", "cE", "N", "Dz"}, []string{"ab", "c", "", ""}, 3, 0, ""},
		{"held prefix released", []string{"END"}, []string{"xE", "Nx"}, []string{"x", "ENx"}, -1, -1, ""},
		{"prefix at the end", []string{"END"}, []string{"abEN"}, []string{"ab"}, -1, -1, "EN"},
		{"earliest stop wins", []string{"cd", "bcd"}, []string{"abcd"}, []string{"a"}, 0, 1, ""},
		// Issue #13: "bc" listed first, "ab" starts first.
		{"earliest across pieces", []string{"bc", "ab"}, []string{"x", "a", "bc"}, []string{"x", "", ""}, 2, 1, ""},
		{"invalid byte passes", nil, []string{"\xff", "a"}, []string{"\xff", "a"}, -1, -1, ""},
		{"lone continuation byte passes", nil, []string{"\xb8", "a"}, []string{"\xb8", "a"}, -1, -1, ""},
		{"4-byte character split", nil, []string{"\xf0\x9f", "\x98", "\x80"}, []string{"", "", "😀"}, -1, -1, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &textStream{stops: tt.stops}
			for i, p := range tt.pieces {
				out, stop := s.push(p, false)
				if out != tt.want[i] || (stop >= 0) != (i == tt.stopped) {
					t.Fatalf("piece %d %q: %q, stop %d; want %q, stopped %v", i, p, out, stop, tt.want[i], i == tt.stopped)
				}
				if stop >= 0 {
					if stop != tt.stop {
						t.Errorf("stop string %d, want %d", stop, tt.stop)
					}
					return
				}
			}
			if f := s.flush(); f != tt.flush {
				t.Errorf("flush = %q, want %q", f, tt.flush)
			}
		})
	}
	// push with flush releases what it would hold back.
	s := &textStream{stops: []string{"END"}}
	if out, stop := s.push("abEN\xe4", true); out != "abEN\xe4" || stop != -1 {
		t.Errorf("push with flush: %q, %d", out, stop)
	}
}

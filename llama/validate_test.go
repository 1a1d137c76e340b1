package llama

import (
	"bytes"
	"strings"
	"testing"
)

func TestRWKVUnescape(t *testing.T) {
	for in, want := range map[string]string{
		`abc`:         "abc",
		`\t\n\r`:      "\t\n\r",
		`\x00\xff`:    "\x00\xff",
		`\x4a`:        "J",
		`\\ \"`:       `\ "`,
		"\\x\x80\x80": "P", // not hex: (char)0x80 - '0' is 0x50 as uint8_t, as in llama.cpp
		`trailing\`:   "trailing",
		`\x4`:         "",
	} {
		if got := rwkvUnescape(in); !bytes.Equal(got, []byte(want)) {
			t.Errorf("rwkvUnescape(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCheckRWKV(t *testing.T) {
	var all []string
	for c := range 256 {
		all = append(all, `\x`+strings.ToLower(string("0123456789abcdef"[c>>4]))+string("0123456789abcdef"[c&15]))
	}
	if err := checkRWKV(append(all, "hello", `\xe4\xb8\xad`)); err != nil {
		t.Errorf("every byte a token: %v", err)
	}
	// "h" begins "hello" but is not a token: the tokenizer would spin on it.
	if err := checkRWKV([]string{"hello", "e"}); err == nil || !strings.Contains(err.Error(), "0x68") {
		t.Errorf("h missing: %v", err)
	}
	if err := checkRWKV([]string{`\xe4\xb8\xad`}); err == nil || !strings.Contains(err.Error(), "0xe4") {
		t.Errorf("0xe4 missing: %v", err)
	}
}

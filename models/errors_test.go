package models

import "testing"

func TestNotFoundErrorQuoting(t *testing.T) {
	for _, tt := range []struct{ ref, want string }{
		{`C:\models\x.gguf`, `model file "C:\models\x.gguf" not found`},
		{"/models/x.gguf", `model file "/models/x.gguf" not found`},
		{"a\nb.gguf", `model file "a\nb.gguf" not found`},
		{`say "hi".gguf`, `model file "say \"hi\".gguf" not found`},
		{"bad\xffutf8.gguf", `model file "bad\xffutf8.gguf" not found`},
	} {
		if got := (&NotFoundError{Ref: tt.ref, IsPath: true}).Error(); got != tt.want {
			t.Errorf("Error() = %s, want %s", got, tt.want)
		}
	}
	if got, want := (&NotFoundError{Ref: "owner/repo:Q4_0", PullRef: "owner/repo:Q4_0"}).Error(),
		`model "owner/repo:Q4_0" not found; pull it with: llamago pull owner/repo:Q4_0, or give a path`; got != want {
		t.Errorf("Error() = %s, want %s", got, want)
	}
}

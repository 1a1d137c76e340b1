package llama_test

import (
	"github.com/llamago/llamago/internal/testllama"
	"github.com/llamago/llamago/internal/testmodels"
)

// The test models and their defaults, shared with the other packages'
// tests.
var (
	modelsDir  = testmodels.Dir
	modelPath  = testmodels.Path
	loadModel  = testllama.Load
	newContext = testllama.NewContext
)

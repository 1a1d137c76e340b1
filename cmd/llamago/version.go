package main

import (
	"context"
	"fmt"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/llamago/llamago/llama"
)

// version is llamago's version, set at build time with
//
//	go build -ldflags "-X main.version=v1.2.3" ./cmd/llamago
var version = "dev"

// llamaCppCommit is the commit of the llama.cpp in use: the one vendored in
// github.com/ollama/ollama v0.17.4 (its llama/build-info.cpp), or that of
// the installed library of a build with -tags llama_system.
var llamaCppCommit = llama.BuildInfo().Commit

// versionOptions are the streams of "llamago version".
type versionOptions struct {
	IO *iostreams
}

func newVersionCmd(streams *iostreams, runF func(*versionOptions) error) *cobra.Command {
	opts := &versionOptions{IO: streams}
	return &cobra.Command{
		Use:   "version",
		Short: "Print the versions of llamago and llama.cpp, and the system info",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(opts)
			}
			return runVersion(cmd.Context(), opts)
		},
	}
}

func runVersion(_ context.Context, opts *versionOptions) error {
	_, err := fmt.Fprintf(opts.IO.Out,
		"llamago %s\ngo: %s %s/%s\nllama.cpp: %s\nsystem: %s\n",
		version, runtime.Version(), runtime.GOOS, runtime.GOARCH, llama.BuildInfo(), llama.SystemInfo())
	return err
}

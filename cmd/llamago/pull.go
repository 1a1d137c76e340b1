package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
)

// pullOptions are the arguments and streams of "llamago pull".
type pullOptions struct {
	IO *iostreams

	Refs []string
}

func newPullCmd(streams *iostreams, runF func(*pullOptions) error) *cobra.Command {
	opts := &pullOptions{IO: streams}
	cmd := &cobra.Command{
		Use:   "pull REF...",
		Short: "Download models into the model store",
		Long: "Download models into the model store and print their paths.\n\n" +
			"A reference is a catalog alias (such as stories260k), a Hugging Face file\n" +
			"hf://OWNER/REPO/FILE.gguf, or a repository and quantization OWNER/REPO[:QUANT]\n" +
			"(default Q4_K_M), as llama.cpp's -hf. A model already in the store is not\n" +
			"downloaded again. Downloads resume after an interruption, are checked\n" +
			"against the size and SHA-256 when known, and appear in the store only when\n" +
			"complete; every part of a split model is downloaded.\n\n" +
			"The store is the first directory of $LLAMAGO_MODELS (a path list), or\n" +
			"llamago/models in the user cache directory. $HF_TOKEN is sent to the hub\n" +
			"for gated and private repositories; $HF_ENDPOINT names a mirror. Progress\n" +
			"goes to standard error: a bar on a terminal, else a line per 10%.",
		Example: `  llamago pull stories260k
  llamago pull hf://ggml-org/models/tinyllamas/stories260K.gguf
  llamago pull Qwen/Qwen2.5-0.5B-Instruct-GGUF:Q8_0`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageErrorf("no model to pull: give a reference")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Refs = args
			if runF != nil {
				return runF(opts)
			}
			return runPull(cmd.Context(), opts)
		},
	}
	return cmd
}

// runPull pulls each reference in turn and prints its path on IO.Out.
func runPull(ctx context.Context, opts *pullOptions) error {
	env := modelEnvFrom(ctx)
	s := env.store()
	for _, ref := range opts.Refs {
		p, err := pullModel(ctx, s, ref, env)
		if err != nil {
			return err
		}
		fmt.Fprintln(opts.IO.Out, p)
	}
	return nil
}

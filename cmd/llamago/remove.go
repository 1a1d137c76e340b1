package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
)

// removeOptions are the arguments and streams of "llamago rm".
type removeOptions struct {
	IO *iostreams

	Refs []string
}

func newRemoveCmd(streams *iostreams, runF func(*removeOptions) error) *cobra.Command {
	opts := &removeOptions{IO: streams}
	cmd := &cobra.Command{
		Use:     "rm REF...",
		Aliases: []string{"remove"},
		Short:   "Delete models from the model store",
		Long: "Delete models from the model store: the file, every part of a split\n" +
			"model and any partial download, then the directories left empty. Only\n" +
			"files inside the store's directories are deleted; a model being\n" +
			"downloaded is refused. The paths deleted are printed.",
		Example: `  llamago rm stories260k
  llamago rm Qwen/Qwen2.5-0.5B-Instruct-GGUF:Q8_0`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageErrorf("no model to remove: give a reference")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Refs = args
			if runF != nil {
				return runF(opts)
			}
			return runRemove(cmd.Context(), opts)
		},
	}
	return cmd
}

func runRemove(ctx context.Context, opts *removeOptions) error {
	s := modelEnvFrom(ctx).store()
	for _, ref := range opts.Refs {
		removed, err := s.Remove(ref)
		for _, p := range removed {
			fmt.Fprintf(opts.IO.Out, "deleted %s\n", p)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

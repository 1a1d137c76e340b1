package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

// listOptions are the flags and streams of "llamago ls".
type listOptions struct {
	IO *iostreams

	JSON bool
}

func newListCmd(streams *iostreams, runF func(*listOptions) error) *cobra.Command {
	opts := &listOptions{IO: streams}
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List the models in the model store",
		Long: "List the GGUF files in the model store's directories: name, size,\n" +
			"quantization, architecture and path. The name (or the catalog alias, shown\n" +
			"instead where there is one) is a reference that -m accepts. A split model\n" +
			"is listed once, with the size of all its parts.",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(opts)
			}
			return runList(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print a JSON array")
	return cmd
}

// listJSON is one model of "llamago ls --json".
type listJSON struct {
	Name     string    `json:"name"`
	Alias    string    `json:"alias,omitempty"`
	Path     string    `json:"path"`
	Dir      string    `json:"dir"`
	Size     int64     `json:"size"`
	Parts    int       `json:"parts"`
	Arch     string    `json:"architecture,omitempty"`
	Quant    string    `json:"quantization,omitempty"`
	Modified time.Time `json:"modified"`
	Error    string    `json:"error,omitempty"`
}

func runList(ctx context.Context, opts *listOptions) error {
	s := modelEnvFrom(ctx).store()
	list, err := s.List()
	if err != nil {
		return err
	}
	if opts.JSON {
		out := make([]listJSON, 0, len(list))
		for _, m := range list {
			j := listJSON{Name: m.Name, Alias: m.Alias, Path: m.Path, Dir: m.Dir, Size: m.Size, Parts: m.Parts,
				Arch: m.Arch, Quant: m.Quant, Modified: m.ModTime}
			if m.Err != nil {
				j.Error = m.Err.Error()
			}
			out = append(out, j)
		}
		enc := json.NewEncoder(opts.IO.Out)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	if len(list) == 0 {
		dirs, _ := s.SearchDirs()
		fmt.Fprintf(opts.IO.ErrOut, "no models in %s; get one with: llamago pull REF\n", strings.Join(dirs, ", "))
		return nil
	}
	tw := tabwriter.NewWriter(opts.IO.Out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSIZE\tQUANT\tARCH\tPATH")
	for _, m := range list {
		name := m.Name
		if m.Alias != "" {
			name = m.Alias
		}
		quant, arch := dash(m.Quant), dash(m.Arch)
		if m.Err != nil {
			arch = "error: " + errorLine(m.Err)
		}
		size := humanBytes(m.Size)
		if m.Parts > 1 {
			size += fmt.Sprintf(" (%d parts)", m.Parts)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", name, size, quant, arch, m.Path)
	}
	return tw.Flush()
}

// dash returns s, or "-" if it is empty.
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

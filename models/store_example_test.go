package models_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/llamago/llamago/models"
)

// A command resolves a model reference, downloading it if needed, and
// draws a progress bar from the Progress callback.
func ExampleStore_Pull() {
	store := &models.Store{Retries: 3} // directories, endpoint and token from the environment
	path, err := store.Resolve("stories260k")
	var nf *models.NotFoundError
	if errors.As(err, &nf) && nf.PullRef != "" {
		path, err = store.Pull(context.Background(), nf.PullRef, &models.PullOptions{
			Progress: func(p models.Progress) {
				// For example with github.com/schollz/progressbar/v3:
				// bar.ChangeMax64(p.Total); bar.Set64(p.Done).
				fmt.Printf("\r%s: %d of %d bytes", p.File, p.Done, p.Total)
			},
		})
	}
	if err != nil {
		log.Fatal(err) // one line: what was searched and how to get the model
	}
	fmt.Println("model at", path)
}

// List shows what is in the store.
func ExampleStore_List() {
	list, err := models.NewStore().List()
	if err != nil {
		log.Fatal(err)
	}
	for _, m := range list {
		if m.Err != nil {
			fmt.Printf("%s: %v\n", m.Name, m.Err)
			continue
		}
		fmt.Printf("%-50s %-8s %-8s %10d\n", m.Name, m.Arch, m.Quant, m.Size)
	}
}

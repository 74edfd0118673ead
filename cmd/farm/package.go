package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/farmobs/farm/internal/packaging"
)

// cmdPackage writes the reproducible source archive that terraform deploys (see pkg/packaging)
// and prints its path and SHA-256 in sha256sum's format.
func cmdPackage(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("package", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("o", "dist/farm-source.zip", "where to write the archive")
	dir := fs.String("C", ".", "a directory inside the Go module to package")
	list := fs.Bool("list", false, "also print every file the archive holds")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: farm package [-o dist/farm-source.zip] [-C dir] [-list]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return fmt.Errorf("package takes no arguments, got %q", fs.Args())
	}
	res, err := packaging.Build(ctx, *dir, *out)
	if err != nil {
		return fmt.Errorf("package: %w", err)
	}
	if *list {
		for _, f := range res.Files {
			fmt.Fprintln(stdout, f)
		}
	}
	fmt.Fprintf(stderr, "wrote %s: %d files, %d bytes\n", res.Path, len(res.Files), res.Size)
	fmt.Fprintf(stdout, "%s  %s\n", res.SHA256, res.Path)
	return nil
}

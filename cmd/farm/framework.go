package main

import (
	"bufio"
	"io"
	"os"
	"strings"
	"sync"
)

// frameworkNoise are the lines the Functions Framework prints itself, on the process's stdout and
// stderr rather than through slog: one per function at start, and one after every failed
// delivery, which the function and the push bus have logged already (the bus once, not per
// delivery). On Google Cloud they are useful; on a quiet terminal they are noise.
var frameworkNoise = []string{"Serving function: ", "Function error: "}

// quietFramework routes the process's stdout and stderr through a filter of frameworkNoise, when
// the terminal is quiet (FARM_LOG_LEVEL unset, text format); everything else, a panic's stack
// included, passes. Callers write to out and errw, the original files, directly. restore puts
// the files back and waits until everything caught was written.
func quietFramework() (out, errw *os.File, restore func()) {
	out, errw = os.Stdout, os.Stderr
	if os.Getenv("FARM_LOG_LEVEL") != "" || strings.EqualFold(strings.TrimSpace(os.Getenv("FARM_LOG_FORMAT")), "json") {
		return out, errw, func() {}
	}
	var wg sync.WaitGroup
	var closers []func()
	for _, f := range []**os.File{&os.Stdout, &os.Stderr} {
		orig := *f
		r, w, err := os.Pipe()
		if err != nil {
			continue // unfiltered, then
		}
		*f = w
		wg.Go(func() { filterLines(r, orig, frameworkNoise) })
		closers = append(closers, func() { *f = orig; _ = w.Close() })
	}
	return out, errw, func() {
		for _, c := range closers {
			c()
		}
		wg.Wait()
	}
}

// filterLines copies r to w line by line, leaving out the lines that start with one of drop.
func filterLines(r io.ReadCloser, w io.Writer, drop []string) {
	defer r.Close()
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadString('\n')
		if line != "" && !hasAnyPrefix(line, drop) {
			_, _ = io.WriteString(w, line)
		}
		if err != nil {
			return
		}
	}
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

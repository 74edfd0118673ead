//go:build !unix

package filestore

import "context"

// lockFile: without flock, only the in-process mutex protects the file; use one process per file.
func lockFile(ctx context.Context, path string) (unlock func(), err error) {
	return func() {}, ctx.Err()
}

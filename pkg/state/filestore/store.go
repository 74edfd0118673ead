package filestore

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/farmobs/farm/pkg/clock"
	"github.com/farmobs/farm/pkg/state"
)

// Store is the file-backed state.Store and state.Ledger. It is safe for concurrent use, also by
// several Stores (in one process or several) on the same file.
type Store struct {
	path  string
	clock clock.Clock
	usage state.Usage

	mu sync.Mutex // serialises calls; guards what follows
	// data is the parsed file as of info, reused while the file is unchanged.
	data *fileData
	info fs.FileInfo
	// parts are the index parts this store last read or wrote, by source (split.go).
	parts map[string][]*filePart
	// afterWrite, set by a call's change, runs once the state file is written, under the lock.
	afterWrite func()
}

var (
	_ state.Store  = (*Store)(nil)
	_ state.Ledger = (*Store)(nil)
)

// Option configures a Store.
type Option func(*Store)

// WithClock sets the clock that expires ledger entries and runs (default: the wall clock).
func WithClock(c clock.Clock) Option { return func(s *Store) { s.clock = c } }

// New returns a Store persisted to path. Nothing is touched until the first call, which creates
// the directory if needed.
func New(path string, opts ...Option) *Store {
	s := &Store{path: path, clock: clock.Real{}}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Path returns the file the store persists to.
func (s *Store) Path() string { return s.path }

// Usage returns the document reads and writes performed so far, counted as the Firestore store
// counts them (see state.Usage).
func (s *Store) Usage() (reads, writes int64) { return s.usage.Counts() }

// StoreName names the store in a poll's counters (file_store_reads, file_store_writes).
func (s *Store) StoreName() string { return "file_store" }

// view runs fn on the current state, read-only.
func (s *Store) view(ctx context.Context, fn func(d *fileData) error) error {
	return s.do(ctx, func(d *fileData) (bool, error) { return false, fn(d) })
}

// update runs fn on the current state and writes the file if fn reports a change. fn must leave
// d untouched when it returns an error.
func (s *Store) update(ctx context.Context, fn func(d *fileData) (changed bool, err error)) error {
	return s.do(ctx, fn)
}

func (s *Store) do(ctx context.Context, fn func(d *fileData) (bool, error)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.path == "" {
		return fmt.Errorf("%w: no state file path", state.ErrInvalid)
	}
	if err := os.MkdirAll(filepath.Dir(s.path), 0o700); err != nil {
		return fmt.Errorf("create the state directory: %w", err)
	}
	unlock, err := lockFile(ctx, s.path+".lock")
	if err != nil {
		return err
	}
	defer unlock()
	d, err := s.load()
	if err != nil {
		return err
	}
	s.afterWrite = nil
	changed, err := fn(d)
	if err != nil || !changed {
		s.afterWrite = nil
		return err
	}
	d.prune(s.clock.Now())
	d.Version = formatVersion
	info, err := writeFile(s.path, d)
	if err != nil {
		s.data, s.info, s.afterWrite = nil, nil, nil // d holds changes the file does not
		return err
	}
	s.data, s.info = d, info
	if s.afterWrite != nil {
		s.afterWrite()
		s.afterWrite = nil
	}
	return nil
}

// load returns the file's state, parsing it again only if it changed since last time (another
// process replaced it: a rename gives it a new inode).
func (s *Store) load() (*fileData, error) {
	if s.data != nil {
		info, err := os.Stat(s.path)
		if err == nil && os.SameFile(info, s.info) && info.Size() == s.info.Size() && info.ModTime().Equal(s.info.ModTime()) {
			return s.data, nil
		}
	}
	d, info, err := readFile(s.path)
	if err != nil {
		return nil, err
	}
	if info == nil { // no file yet: nothing to reuse
		s.data, s.info = nil, nil
		return d, nil
	}
	s.data, s.info = d, info
	return d, nil
}

package firestore

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
)

// encodingGzipJSON names how index and task maps are stored, so that a later format can be
// told apart.
const encodingGzipJSON = "gzip+json"

// maxBlobBytes keeps an encoded index or task map, with the rest of its document, below
// Firestore's 1 MiB document limit.
const maxBlobBytes = 1_000_000

// maxDocIDBytes is Firestore's limit on a document id.
const maxDocIDBytes = 1500

func encodeBlob(v any) ([]byte, error) {
	var buf bytes.Buffer
	zw := gzipWriters.Get().(*gzip.Writer)
	defer gzipWriters.Put(zw)
	zw.Reset(&buf)
	if err := json.NewEncoder(zw).Encode(v); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// gzipWriters are reused: a new writer allocates most of a megabyte, and a poll encodes every
// changed run's tasks (twice: CheckCommit, then WriteRuns).
var gzipWriters = sync.Pool{New: func() any { return gzip.NewWriter(nil) }}

func decodeBlob(encoding string, b []byte, v any) error {
	if len(b) == 0 {
		return nil
	}
	if encoding != encodingGzipJSON {
		return fmt.Errorf("unknown encoding %q", encoding)
	}
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return err
	}
	if err := json.NewDecoder(zr).Decode(v); err != nil {
		return err
	}
	// Reading to the end makes gzip verify its checksum.
	if _, err := io.Copy(io.Discard, zr); err != nil {
		return err
	}
	return zr.Close()
}

// escapeID turns a name into a readable, injective document id: ASCII letters, digits and '-'
// stay, every other byte becomes %XX. So '/', '.', '_' and "__x__" never reach Firestore as such.
func escapeID(name string) string {
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

// hashID is a fixed-length document id for a name: 128 bits of SHA-256, in hex.
func hashID(name string) string {
	sum := sha256.Sum256([]byte(name))
	return hex.EncodeToString(sum[:16])
}

// ledgerID is the ledger document id of id in namespace: "{namespace}_{id}", escaped. '_' never
// appears in an escaped part, so the pair is unambiguous; an id too long to escape in full is
// replaced by "={hash}" ('=' never appears in an escaped part either).
func ledgerID(namespace, id string) string {
	ns, part := escapeID(namespace), escapeID(id)
	if len(ns)+1+len(part) > maxDocIDBytes {
		part = "=" + hashID(id)
	}
	return ns + "_" + part
}

package poll

import (
	"bytes"
	"encoding/json"
)

// StoreNamer is implemented by state stores that say what they are: a poll's operation counters
// are named after the store that counted them (firestore_reads on Firestore, file_store_reads on
// the file store), so a summary never calls file operations Firestore's.
type StoreNamer interface {
	StoreName() string
}

// storeKey is the name of one of the store counters ("reads", "writes") in the answer and the
// summary log line.
func (r *Result) storeKey(what string) string {
	name := r.Store
	if name == "" {
		name = "firestore"
	}
	return name + "_" + what
}

// MarshalJSON writes the Result with its store counters named after the store.
func (r Result) MarshalJSON() ([]byte, error) {
	type plain Result
	b, err := json.Marshal(plain(r))
	if err != nil || r.storeKey("reads") == "firestore_reads" {
		return b, err
	}
	b = bytes.Replace(b, []byte(`"firestore_reads":`), []byte(`"`+r.storeKey("reads")+`":`), 1)
	return bytes.Replace(b, []byte(`"firestore_writes":`), []byte(`"`+r.storeKey("writes")+`":`), 1), nil
}

// UnmarshalJSON reads a Result whichever store named its counters.
func (r *Result) UnmarshalJSON(b []byte) error {
	type plain Result
	var aux struct {
		plain
		FileReads  *int `json:"file_store_reads"`
		FileWrites *int `json:"file_store_writes"`
	}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	*r = Result(aux.plain)
	if aux.FileReads != nil || aux.FileWrites != nil {
		r.Store = "file_store"
		if aux.FileReads != nil {
			r.StoreReads = *aux.FileReads
		}
		if aux.FileWrites != nil {
			r.StoreWrites = *aux.FileWrites
		}
	}
	return nil
}

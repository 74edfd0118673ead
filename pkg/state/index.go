package state

import "hash/fnv"

// The index of a large source is stored in parts, so that a commit rewrites only the parts that
// changed and no part outgrows a document. These rules are the same for every store.

// PartsFor is the number of parts for an index of entries when a part holds about perPart: a power
// of two (so a resize moves each key to one of two parts), 0 for an empty index.
func PartsFor(entries, perPart int) int {
	if entries == 0 {
		return 0
	}
	n := 1
	for n < (entries+perPart-1)/perPart {
		n *= 2
	}
	return n
}

// PartOf is the part of key among n: FNV-1a of the key modulo n.
func PartOf(key string, n int) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	return int(h.Sum32() % uint32(n))
}

// Split returns idx's entries by part, for n parts.
func (idx Index) Split(n int) []Index {
	parts := make([]Index, n)
	for i := range parts {
		parts[i] = Index{}
	}
	for k, v := range idx {
		parts[PartOf(k, n)][k] = v
	}
	return parts
}

// OnlyDropsInactive reports whether next is old without some inactive entries: a part that changed
// only so need not be rewritten, since a poll never follows an inactive entry up (the part's next
// write drops them).
func OnlyDropsInactive(old, next Index) bool {
	if len(next) > len(old) {
		return false
	}
	for k, v := range next {
		if o, ok := old[k]; !ok || o != v {
			return false
		}
	}
	if len(next) == len(old) {
		return true
	}
	for k, v := range old {
		if _, ok := next[k]; !ok && v.Active {
			return false
		}
	}
	return true
}

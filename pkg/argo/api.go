package argo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/farmobs/farm/pkg/httpx"
)

// Argo Server endpoints (upstream api/openapi-spec/swagger.json).
const (
	pathWorkflows = "/api/v1/workflows/"
	pathArchived  = "/api/v1/archived-workflows"
)

// workflowFields are the fields of a workflow FARM reads. The server trims its answer to them
// (upstream util/fields): a path keeps everything under it, its parents are walked.
var workflowFields = []string{
	"metadata.uid", "metadata.name", "metadata.namespace", "metadata.labels",
	"metadata.resourceVersion", "metadata.generateName", "metadata.creationTimestamp",
	"metadata.annotations",
	"spec.workflowTemplateRef", "spec.arguments.parameters",
	"status.phase", "status.startedAt", "status.finishedAt", "status.message",
	"status.nodes", "status.compressedNodes", "status.offloadNodeStatusVersion",
}

// listFields trims list pages. The top-level "metadata" must stay: it carries the continue
// offset, and without it paging would silently stop after the first page.
var listFields = "metadata," + prefixed("items.", workflowFields)

// listFieldsNoNodes lists workflows without their nodes, for listings that keep few rows.
var listFieldsNoNodes = "metadata," + prefixed("items.", slices.DeleteFunc(slices.Clone(workflowFields), func(f string) bool {
	return f == "status.nodes" || f == "status.compressedNodes"
}))

// slimFields are what tells whether a run changed, and nothing more: identity, resourceVersion
// (the fingerprint), phase and the times the window and the archive fingerprint need. No labels:
// which listing a row came from says whether it is labelled completed (see markCompleted). A row
// costs about 250 bytes against kilobytes with its nodes; the runs whose fingerprint changed are
// then read one by one (Load).
var slimFields = "metadata," + prefixed("items.", []string{
	"metadata.uid", "metadata.name", "metadata.namespace", "metadata.resourceVersion",
	"status.phase", "status.startedAt", "status.finishedAt",
})

// getFields trims single-workflow answers.
var getFields = prefixed("", workflowFields)

func prefixed(prefix string, fields []string) string {
	var b strings.Builder
	for i, f := range fields {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(prefix + f)
	}
	return b.String()
}

// listPage reads one page of a workflow list, decoding items one at a time from the stream so a
// page of large workflows is never held twice. It returns the items, the next continue value
// ("" on the last page) and the bytes of the answer.
func (s *Source) listPage(ctx context.Context, path string, q url.Values) ([]*Workflow, string, int64, error) {
	var items []*Workflow
	var next string
	var size int64
	err := s.api.Do(ctx, httpx.Request{Path: path, Query: q}, func(r io.Reader) error {
		cr := &byteCounter{r: r}
		var err error
		items, next, err = decodeList(cr) // a retried read starts over
		size = cr.n
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("the response ended inside the JSON: %w", io.ErrUnexpectedEOF)
		}
		return err
	})
	return items, next, size, explain(err)
}

// byteCounter counts what is read through it: the measured sizes the listing choice is made from.
type byteCounter struct {
	r io.Reader
	n int64
}

func (c *byteCounter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// decodeList walks {"metadata":{"continue":…},"items":[…]} token by token.
func decodeList(r io.Reader) ([]*Workflow, string, error) {
	dec := json.NewDecoder(r)
	if err := expectDelim(dec, '{', "a workflow list object"); err != nil {
		return nil, "", err
	}
	var items []*Workflow
	var next string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, "", err
		}
		switch tok {
		case "metadata":
			var md struct {
				Continue string `json:"continue"`
			}
			if err := dec.Decode(&md); err != nil {
				return nil, "", fmt.Errorf("list metadata: %w", err)
			}
			next = md.Continue
		case "items":
			if items, err = decodeItems(dec); err != nil {
				return nil, "", err
			}
		default:
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return nil, "", err
			}
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace: a truncated body fails here
		return nil, "", err
	}
	return items, next, nil
}

func decodeItems(dec *json.Decoder) ([]*Workflow, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if tok == nil { // "items": null is how Argo sends an empty page
		return nil, nil
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return nil, fmt.Errorf("items is %v, not an array", tok)
	}
	var items []*Workflow
	for dec.More() {
		wf := new(Workflow)
		if err := dec.Decode(wf); err != nil {
			return nil, fmt.Errorf("items[%d]: %w", len(items), err)
		}
		items = append(items, wf)
	}
	_, err = dec.Token() // ']'
	return items, err
}

func expectDelim(dec *json.Decoder, want json.Delim, what string) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return fmt.Errorf("got %v, want %s", tok, what)
	}
	return nil
}

// getWorkflow GETs a live workflow by name. uid lets Argo 3.6+ fall back to its archive itself
// (older servers ignore it). It returns (nil, nil) when the server has no such workflow, or only a
// different one of the same name.
func (s *Source) getWorkflow(ctx context.Context, ns, name, uid string) (*Workflow, error) {
	q := url.Values{"fields": {getFields}}
	if uid != "" {
		q.Set("uid", uid)
	}
	if err := s.acquireGet(ctx); err != nil {
		return nil, err
	}
	defer s.releaseGet()
	var wf *Workflow
	err := s.api.Do(ctx, httpx.Request{Path: pathWorkflows + url.PathEscape(ns) + "/" + url.PathEscape(name), Query: q},
		func(r io.Reader) error {
			wf = nil
			cr := &byteCounter{r: r}
			if err := json.NewDecoder(cr).Decode(&wf); err != nil {
				return err
			}
			s.sizes.observeFull(cr.n, 1)
			return nil
		})
	switch {
	case httpx.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, explain(err)
	case wf == nil || (uid != "" && wf.Metadata.UID != uid):
		return nil, nil // the name now belongs to a newer run
	}
	return wf, nil
}

// getArchived GETs a workflow from the archive by uid; (nil, nil) when it is not there or the
// server has no archive.
func (s *Source) getArchived(ctx context.Context, uid string) (*Workflow, error) {
	if s.archiveDisabled.Load() {
		return nil, nil
	}
	if err := s.acquireGet(ctx); err != nil {
		return nil, err
	}
	defer s.releaseGet()
	var wf *Workflow
	err := s.api.Do(ctx, httpx.Request{Path: pathArchived + "/" + url.PathEscape(uid), Permanent: archiveDisabled},
		func(r io.Reader) error {
			wf = nil
			return json.NewDecoder(r).Decode(&wf)
		})
	switch {
	case httpx.IsNotFound(err):
		return nil, nil
	case err != nil && archiveDisabledErr(err):
		// Remembered: every later lookup would get the same answer.
		s.archiveDisabled.Store(true)
		s.log.WarnContext(ctx, "the Argo Server has no workflow archive: runs deleted before FARM saw them finish cannot be recovered", "source", s.Name())
		return nil, nil
	case err != nil:
		return nil, explain(err)
	case wf == nil || wf.Metadata.UID != uid:
		return nil, nil
	}
	return wf, nil
}

// archiveDisabled recognises the answer of a server whose archive is off: upstream's null archive
// returns "getting archived workflows not supported" as a 500, which no retry will change.
func archiveDisabled(e *httpx.StatusError) bool {
	return e.StatusCode == http.StatusInternalServerError && strings.Contains(e.Message, "not supported")
}

func archiveDisabledErr(err error) bool {
	var se *httpx.StatusError
	return errors.As(err, &se) && archiveDisabled(se)
}

// explain adds what to check to the errors people can fix.
func explain(err error) error {
	switch httpx.StatusCode(err) {
	case http.StatusUnauthorized:
		return fmt.Errorf("argo server rejected the credentials (check FARM_ARGO_TOKEN / FARM_ARGO_TOKEN_FILE): %w", err)
	case http.StatusForbidden:
		return fmt.Errorf("argo server denied access (the token's service account needs RBAC to list and get workflows in the namespace): %w", err)
	}
	return err
}

// fieldSelectorUnsupported recognises servers older than 3.5.7, which pass the field selector to
// Kubernetes; Kubernetes knows no spec.startedAt field and refuses the list.
func fieldSelectorUnsupported(err error) bool {
	var se *httpx.StatusError
	if !errors.As(err, &se) || se.StatusCode != http.StatusBadRequest {
		return false
	}
	return strings.Contains(se.Message, "spec.startedAt") || strings.Contains(se.Message, "field label")
}
